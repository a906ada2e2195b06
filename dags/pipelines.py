"""
The Airflow DAGs of every pipeline in include/pipelines/.

Each `<name>.yaml` there that is a pipeline (not a `variant_of:` another) gets, with no Python written:

- `<name>_retrain`: validate, train, judge, deploy (`airflow_mlops.dag_builders.retrain_dag`);
- `<name>_drift_monitor`: drift of the data against the champion's (`drift_monitor_dag`; sources with a date column);
- `<name>_scoring`: the day's records scored with the champion (`scoring_dag`; with `scoring.source`);
- `<name>_performance_monitor`: realized performance on delayed labels (`performance_monitor_dag`; with `scoring.labels`).

Ids, tags, Assets (`mlops://<name>/...`), schedules and docs come from the YAML. A YAML that does not
load gets no DAGs and shows as an import error of dags/pipeline_errors.py; the others load.
"""

# Airflow modules our operators build on, named so that Airflow's DAG processor imports them once, before it forks
# a parser per file ([dag_processor] parsing_pre_import_modules); EmptyOperator: every mapped task's parse needs it.
import airflow.providers.standard.operators.empty  # noqa: F401
import airflow.sdk.bases.branch  # noqa: F401
import airflow.sdk.bases.hook  # noqa: F401 - the amazon provider (s3 sources) loads it while DAGs parse
import airflow.sdk.bases.operatorlink  # noqa: F401
import airflow.sdk.bases.sensor  # noqa: F401

from airflow_mlops.dag_builders import pipeline_dags

globals().update(pipeline_dags())
