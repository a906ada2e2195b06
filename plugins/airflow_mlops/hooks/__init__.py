"""airflow_mlops.hooks"""
