"""airflow_mlops.operators"""
