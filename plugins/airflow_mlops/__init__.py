"""airflow-mlops: the ML lifecycle as Apache Airflow 3 operators."""

__version__ = "0.1.0"
