"""The native stack: the processes of docker-compose.yaml on this machine's loopback, no containers.

python -m tools.stack up|down|status [--profile cluster|local]
python -m tools.stack init      # the compose stack's airflow-init service
"""
