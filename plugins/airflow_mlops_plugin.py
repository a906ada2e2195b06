"""Registers the airflow-mlops plugin when this folder is deployed as Airflow's plugins folder.

Airflow imports every .py file of the plugins folder as a top-level module and registers the
AirflowPlugin classes it finds in them. `.airflowignore` hides the `airflow_mlops` package from
that scan; this module exposes `AirflowMlopsPlugin` only when no installed distribution already
registers it through the `airflow.plugins` entry point, so the plugin is registered exactly once
(a duplicate would be reported as a plugin import error, and the Task SDK's loader stops at it).
"""

from __future__ import annotations

from airflow_mlops import plugin as _plugin

if not _plugin.installed_as_entry_point():
    AirflowMlopsPlugin = _plugin.AirflowMlopsPlugin
