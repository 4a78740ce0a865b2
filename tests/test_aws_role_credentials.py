"""The manager's role credentials reach the sidecar through a file (stack.aws-role.yml).

The writer reads moto's instance metadata service (IMDSv2, as on EC2); the sidecar's real
boto3 clients sign real requests to moto's server with what the file holds.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError

from autoscaler.lab.ports import free_port
from autoscaler.providers import role_credentials as rc
from autoscaler.providers.build import aws_client
from autoscaler.providers.ec2 import Ec2Provider
from autoscaler.settings import Settings
from autoscaler.sources.errors import SourceError

MOTO_SECRET = "test-secret-key"  # what moto's metadata service hands out
NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
}


def writer_env(imds: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({k: v for k, v in NO_CREDENTIALS.items() if v is not None})
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds
    return env


def test_the_writer_puts_the_instance_roles_credentials_in_a_file_only_its_owner_reads(
    moto_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "credentials.json"
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler", "aws-credentials", "--out", str(out), "--once"],
        env=writer_env(moto_url + "/"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["Version"] == 1
    assert (doc["AccessKeyId"], doc["SecretAccessKey"]) == ("test-key", MOTO_SECRET)
    assert doc["SessionToken"]
    assert datetime.fromisoformat(doc["Expiration"]) > datetime.now(UTC)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert MOTO_SECRET not in done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["credentials.json"]  # no temporary left


def test_the_writer_says_why_when_there_is_no_metadata_service(tmp_path: Path) -> None:
    out = tmp_path / "credentials.json"
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler", "aws-credentials", "--out", str(out), "--once"],
        env=writer_env(f"http://127.0.0.1:{free_port()}/"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "gave no role credentials" in done.stderr
    assert "host's network" in done.stderr
    assert not out.exists()


def creds(key: str, valid_for: timedelta) -> rc.RoleCredentials:
    return rc.RoleCredentials(
        role="shiny-manager",
        access_key=key,
        secret_key=f"secret-of-{key}",
        token=f"token-of-{key}",
        expiration=datetime.now(UTC) + valid_for,
    )


def test_a_failed_fetch_keeps_the_last_file_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rc, "RETRY_AFTER_FAILURE", timedelta(0))
    out = tmp_path / "credentials.json"
    stop = threading.Event()
    answers: list[Any] = [
        creds("AKIAFIRST", timedelta(hours=6)),
        rc.RoleCredentialsError("the instance metadata service gave no role credentials"),
        creds("AKIASECOND", timedelta(hours=6)),
    ]
    seen: list[str] = []

    def fetch() -> rc.RoleCredentials:
        if out.exists():
            seen.append(json.loads(out.read_text())["AccessKeyId"])
        answer = answers.pop(0)
        if not answers:
            stop.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    rc.keep_written(out, timedelta(0), stop, fetch=fetch)
    assert seen == ["AKIAFIRST", "AKIAFIRST"]  # the failure left the good file in place
    assert json.loads(out.read_text())["AccessKeyId"] == "AKIASECOND"
    assert "gave no role credentials" in caplog.text
    assert "secret-of-" not in caplog.text
    assert "secret-of-" not in repr(creds("AKIAX", timedelta(hours=1)))


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in NO_CREDENTIALS.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def signed_with(client: Any) -> list[str]:
    """The access key of every request the client sends, as it goes out."""
    keys: list[str] = []

    def record(request: Any, **_: Any) -> None:
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else auth
        keys.append(auth.split("Credential=", 1)[1].split("/", 1)[0])

    client.meta.events.register("before-send", record)
    return keys


def write(path: Path, key: str, valid_for: timedelta) -> None:
    rc.write_atomically(path, creds(key, valid_for))


@pytest.mark.usefixtures("no_ambient_credentials")
def test_the_sidecar_signs_with_the_file_and_reads_it_again_near_expiry(
    moto_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "credentials.json"
    settings = Settings(aws_region="eu-west-1", aws_endpoint_url=moto_url)
    settings = settings.model_copy(update={"aws_credentials_file": path})
    ec2 = aws_client(settings, "ec2")  # before the file exists: the sidecar may start first
    keys = signed_with(ec2)
    with pytest.raises(SourceError, match=rf"no AWS credentials \({path}: no such file"):
        Ec2Provider(ec2, "shiny", lambda *a: "").list_instances()
    write(path, "AKIAFIRST", timedelta(hours=6))
    ec2.describe_instances()
    write(path, "AKIASECOND", timedelta(hours=6))
    ec2.describe_instances()
    assert keys == ["AKIAFIRST", "AKIAFIRST"]  # a copy far from expiry is kept
    path.unlink()
    write(path, "AKIATHIRD", timedelta(minutes=12))  # within botocore's refresh window
    fresh = aws_client(settings, "ec2")
    keys = signed_with(fresh)
    fresh.describe_instances()
    write(path, "AKIAFOURTH", timedelta(hours=6))
    fresh.describe_instances()
    fresh.describe_instances()
    assert keys == ["AKIATHIRD", "AKIAFOURTH", "AKIAFOURTH"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{", "not JSON"),
        ('{"Version": 2}', "not a version 1 credentials document"),
        ('{"Version": 1, "AccessKeyId": "AKIAX", "SecretAccessKey": "s3cr3t"}', "missing"),
    ],
)
def test_a_bad_file_is_named_and_its_content_never_shown(
    tmp_path: Path, content: str, why: str
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(content)
    with pytest.raises(BotoCoreError) as err:
        rc.read_role_file(path)
    assert str(path) in str(err.value) and why in str(err.value)
    assert "s3cr3t" not in str(err.value)


@pytest.mark.usefixtures("no_ambient_credentials")
def test_no_credentials_at_all_is_said_as_such_not_as_ec2_unreachable(moto_url: str) -> None:
    settings = Settings(aws_region="eu-west-1", aws_endpoint_url=moto_url)
    with pytest.raises(SourceError, match=r"no AWS credentials \(Unable to locate credentials\)"):
        Ec2Provider(aws_client(settings, "ec2"), "shiny", lambda *a: "").list_instances()
