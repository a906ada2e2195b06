"""`airflow-mlops init`: profile a sample file, decide a starter pipeline, write its config and its suite.

Three steps on plain data: ``profile_sample`` (what each column of the sample holds), ``decide`` (the
choices a person would make, each with its reason), then ``render_config`` (YAML text, the reasons as
comments) and ``build_suite`` (a GX 1.x suite whose rules carry ``meta.notes``). ``init_pipeline``
checks that the config loads (``load_config``), that the suite loads and that the sample passes it,
before either file is written; it never overwrites a file.

Modules: ``profile``, ``plan`` (``decide``), ``render`` (the YAML text), ``suite``, ``command`` (check and write).
"""

from airflow_mlops.core.onboarding.command import init_pipeline

__all__ = ["init_pipeline"]
