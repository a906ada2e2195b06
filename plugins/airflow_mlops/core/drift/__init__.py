"""Drift between a reference window and a current window, per feature, and the dataset verdict.

Split by concern:

- ``compute``: the entry point ``compute_drift`` (two passes over both windows, Benjamini-Hochberg, the verdict);
- ``windows``: reading a DataFrame, or a CSV/Parquet file or folder of them, chunk by chunk;
- ``kinds``: which columns to compare, as numeric or categorical features;
- ``numeric``: KS and PSI on the reference's quantile bins;
- ``categorical``: chi-square and the Jensen-Shannon distance on category counts;
- ``report``: ``FeatureDrift`` and ``DriftReport`` (the table, the summary, the JSON-able dict);
- ``html_report``: the HTML page and its charts;
- ``check``: one check of a monitoring window against the champion's training data, debounced and logged.
"""

from __future__ import annotations

from airflow_mlops.core.drift.categorical import (
    MAX_CATEGORIES,
    MAX_SHOWN_CATEGORIES,
    OTHER,
    UNSEEN,
    chi_square,
    jensen_shannon,
)
from airflow_mlops.core.drift.check import DriftCheck, WindowValidationFailed, check_window
from airflow_mlops.core.drift.compute import benjamini_hochberg, compute_drift
from airflow_mlops.core.drift.html_report import TOP_PLOTS, distribution_plot, drift_report_html
from airflow_mlops.core.drift.kinds import DATE_LIKE
from airflow_mlops.core.drift.numeric import (
    EPSILON,
    FINE_BINS,
    KS_EXACT_N,
    PSI_BINS,
    ks_p_value,
    population_stability_index,
)
from airflow_mlops.core.drift.report import CATEGORICAL, NUMERIC, DriftInputError, DriftReport, FeatureDrift
from airflow_mlops.core.drift.windows import RESERVOIR_SIZE, SAMPLE_ROWS

__all__ = [
    "CATEGORICAL",
    "DATE_LIKE",
    "EPSILON",
    "FINE_BINS",
    "KS_EXACT_N",
    "MAX_CATEGORIES",
    "MAX_SHOWN_CATEGORIES",
    "NUMERIC",
    "OTHER",
    "PSI_BINS",
    "RESERVOIR_SIZE",
    "SAMPLE_ROWS",
    "TOP_PLOTS",
    "UNSEEN",
    "DriftCheck",
    "DriftInputError",
    "DriftReport",
    "FeatureDrift",
    "WindowValidationFailed",
    "benjamini_hochberg",
    "check_window",
    "chi_square",
    "compute_drift",
    "distribution_plot",
    "drift_report_html",
    "jensen_shannon",
    "ks_p_value",
    "population_stability_index",
]
