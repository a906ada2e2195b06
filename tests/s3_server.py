"""A real S3 API on loopback: moto's standalone server (`moto_server`) as a subprocess, for the object-storage
source tests and benchmarks/s3_snapshot.py.

`S3Server.start()` runs it on a free port and waits until it answers. `enforce_auth()` turns on moto's IAM checks
(every request must be signed with an access key moto issued, whose user's policy allows the action): requests
signed with an unknown key or a wrong secret are then refused with InvalidAccessKeyId / SignatureDoesNotMatch, as
S3 refuses them. `user_keys()` makes such a user (allowed s3:*) while the checks are still off.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REGION = "us-east-1"
#: What a client uses before the checks are on (moto accepts any key then).
SETUP_KEYS = {"aws_access_key_id": "setup-key", "aws_secret_access_key": "setup-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """One moto_server process on 127.0.0.1:`port`."""

    def __init__(self, port: int, process: subprocess.Popen, log: Path) -> None:
        self.port, self.process, self.log = port, process, log
        self.endpoint = f"http://127.0.0.1:{port}"

    @classmethod
    def start(cls, log_dir: Path, timeout: float = 60.0) -> S3Server:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
        if binary is None:
            raise RuntimeError("moto_server is not installed: `uv pip install 'moto[server]'` (the dev extra has it)")
        port = free_port()
        log = log_dir / f"moto-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
            )
        server = cls(port, process, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({process.returncode}): {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=2).close()
                return server
            except OSError:
                time.sleep(0.2)
        server.stop()
        raise RuntimeError(f"moto_server did not answer on port {port} within {timeout:g}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def client(self, service: str = "s3", **keys: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **(keys or SETUP_KEYS))

    def user_keys(self, user: str = "reader") -> dict[str, str]:
        """An IAM user allowed every S3 action, and its access key (make it before `enforce_auth`)."""
        iam = self.client("iam")
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def enforce_auth(self) -> None:
        """From now on every request is authenticated and authorized (moto's INITIAL_NO_AUTH_ACTION_COUNT=0)."""
        self._reset_auth("0")

    def relax_auth(self) -> None:
        self._reset_auth("inf")

    def _reset_auth(self, count: str) -> None:
        request = urllib.request.Request(  # not form-encoded: moto reads the raw body
            f"{self.endpoint}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).close()

    def connection(self, key_id: str, secret: str, *, endpoint: str | None = None, **extra: Any) -> str:
        """An Airflow `aws` connection (JSON, for AIRFLOW_CONN_<ID>) to this server, as one to MinIO is written;
        `extra` adds to its extra (e.g. config_kwargs for botocore)."""
        extra = {"endpoint_url": endpoint or self.endpoint, "region_name": REGION, **extra}
        return json.dumps({"conn_type": "aws", "login": key_id, "password": secret, "extra": extra})

    def upload_folder(self, folder: Path, bucket: str, prefix: str, **keys: str) -> list[str]:
        """Every file of `folder` as `<prefix><name>` in `bucket` (made if missing); returns the keys."""
        s3 = self.client(**keys)
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        keys_written = []
        for path in sorted(folder.iterdir()):
            if path.is_file():
                s3.upload_file(str(path), bucket, f"{prefix}{path.name}")
                keys_written.append(f"{prefix}{path.name}")
        return keys_written
