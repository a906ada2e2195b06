"""airflow_mlops.core"""
