"""The native stack: the processes of docker-compose.yaml on this machine's loopback, no containers.

    python -m airflow_mlops.stack up|down|status [--profile cluster|local]
    python -m airflow_mlops.stack init      # the compose stack's airflow-init service
"""
