"""
Import errors for the pipeline YAMLs that do not load (dags/pipelines.py builds the DAGs of the others).

A broken include/pipelines/*.yaml fails here, with the file, the key and what to do, in the Airflow
UI's import errors; every other pipeline's DAGs are unaffected.
"""

from airflow_mlops.dag_builders import raise_pipeline_errors

raise_pipeline_errors()
