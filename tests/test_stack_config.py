"""stack.yml: rendered by the real `docker stack config`, and checked for what a Swarm
deployment needs (healthchecks, limits, update and rollback, placement, secrets, configs).

The variables table of docs/deploy.md is the contract: every variable of stack.yml is in
it, the stack renders with its examples, and every required one fails with its message.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.lab.teardown import stop_child
from tests.realparts import missing_real_part

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "stack.yml"
AWS_KEYS = ROOT / "stack.aws-keys.yml"
AWS_ROLE = ROOT / "stack.aws-role.yml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
PROMETHEUS_CONFIG = ROOT / "alerting" / "prometheus.yml"
SHINYPROXY_CONFIG = ROOT / "shinyproxy" / "application.yml"

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# ---------------------------------------------------------------- helpers


def stack_variables() -> dict[str, dict[str, str | None]]:
    """Every ${VAR} of stack.yml: its default (``:-``) and its error message (``:?``)."""
    found: dict[str, dict[str, str | None]] = {}
    text = STACK.read_text(encoding="utf-8").replace("$$", "")
    for name, op, arg in VARIABLE.findall(text):
        entry = found.setdefault(name, {"default": None, "message": None})
        if op.endswith("-"):
            entry["default"] = arg
        elif op.endswith("?"):
            entry["message"] = arg
    return found


def documented_variables() -> dict[str, dict[str, str]]:
    """The rows of the variables table in docs/deploy.md."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for line in DEPLOY_DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:4] == ["variable", "required", "default", "example"]:
            header = cells
            continue
        if header is None or set(line) <= set("|-: "):
            continue
        row = dict(zip(header, cells, strict=False))
        rows[row["variable"].strip("`")] = {k: v.strip("`") for k, v in row.items()}
    return rows


def required_env() -> dict[str, str]:
    return {
        name: row["example"]
        for name, row in documented_variables().items()
        if row["required"] == "yes"
    }


def docker_stack_config(
    tmp_path: Path, env: dict[str, str], *files: Path
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker")
    if exe is None:
        missing_real_part("docker CLI not installed (apt-get install docker.io)")
    home = tmp_path / "docker-config"
    home.mkdir(exist_ok=True)
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DOCKER_CONFIG": str(home),
        "HOME": str(tmp_path),
        **env,
    }
    args = [exe, "stack", "config"]
    for f in files or (STACK,):
        args += ["-c", str(f)]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, env=clean, cwd=ROOT, check=False
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    res = docker_stack_config(tmp_path_factory.mktemp("stack"), required_env())
    assert res.returncode == 0, res.stderr
    doc: dict[str, Any] = yaml.safe_load(res.stdout)
    return doc


def raw_stack() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(STACK.read_text(encoding="utf-8"))
    return doc


# ---------------------------------------------------------------- variables and rendering


def test_every_stack_variable_is_documented_and_nothing_else() -> None:
    assert set(documented_variables()) == set(stack_variables())


def test_documented_defaults_and_required_flags_match_the_stack() -> None:
    docs = documented_variables()
    for name, spec in stack_variables().items():
        row = docs[name]
        if spec["message"] is not None:
            assert row["required"] == "yes", name
            assert row["example"], f"{name}: a required variable needs an example"
        else:
            assert row["required"] == "no", name
            assert row["default"] == spec["default"], name


def test_stack_renders_with_the_documented_examples(rendered: dict[str, Any]) -> None:
    env = required_env()
    services = rendered["services"]
    assert services["autoscaler"]["image"] == env["AUTOSCALER_IMAGE"]
    assert services["shinyproxy"]["image"] == "openanalytics/shinyproxy:3.2.0"
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["shinyproxy"]["user"] == f"shinyproxy:{env['DOCKER_GID']}"
    assert services["autoscaler"]["stop_grace_period"] == "30s"  # a pass ends cleanly
    # Prometheus reads the socket through the docker group, as its image's user.
    assert services["prometheus"]["user"] == f"65534:{env['DOCKER_GID']}"
    assert not [
        n for n, s in services.items() if str(s.get("user", "")).split(":")[0] in ("root", "0")
    ]
    labels = services["shinyproxy"]["deploy"]["labels"]
    assert labels["traefik.http.routers.shinyproxy.rule"] == f"Host(`{env['DOMAIN']}`)"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SERVER_ROOT_URL"] == f"https://{env['DOMAIN']}/grafana/"
    assert all(
        c["name"].endswith(f"_{env['CONFIG_VERSION']}") for c in rendered["configs"].values()
    )


# Traefik v3's metrics.prometheus options (pkg/types/metrics.go, Prometheus). Its flag
# parser matches names case-insensitively but stops Traefik at an unknown one.
TRAEFIK_PROMETHEUS_OPTIONS = {
    "buckets",
    "addentrypointslabels",
    "addrouterslabels",
    "addserviceslabels",
    "entrypoint",
    "manualrouting",
    "headerlabels",
}


def test_every_service_behind_traefik_is_health_checked_by_it() -> None:
    # Traefik sends traffic only to servers that pass, and reports traefik_service_server_up
    # (the Traefik dashboard's "Servers up") only for services with a health check
    for name, svc in raw_stack()["services"].items():
        labels = svc.get("deploy", {}).get("labels", [])
        if "traefik.enable=true" not in labels:
            continue
        paths = [x for x in labels if ".loadbalancer.healthcheck.path=/" in x]
        assert len(paths) == 1, name


def test_traefiks_prometheus_flags_are_options_traefik_knows() -> None:
    flags = [f for f in raw_stack()["services"]["traefik"]["command"] if f.startswith("--metrics.")]
    names = [f.split("=", 1)[0].removeprefix("--metrics.prometheus") for f in flags]
    assert "" in names  # --metrics.prometheus=true
    unknown = [
        n
        for n in names
        if n and n.lstrip(".").split(".")[0].lower() not in TRAEFIK_PROMETHEUS_OPTIONS
    ]
    assert unknown == []


@pytest.mark.parametrize("name", sorted(n for n, s in stack_variables().items() if s["message"]))
def test_a_missing_required_variable_stops_the_deploy_with_its_message(
    tmp_path: Path, name: str
) -> None:
    env = {k: v for k, v in required_env().items() if k != name}
    res = docker_stack_config(tmp_path, env)
    assert res.returncode != 0
    message = stack_variables()[name]["message"] or ""
    assert name in res.stderr and message in res.stderr


def test_docker_stack_config_rejects_a_broken_stack(tmp_path: Path) -> None:
    broken = tmp_path / "stack.yml"
    text = STACK.read_text(encoding="utf-8")
    assert "    healthcheck:\n" in text
    broken.write_text(text.replace("    healthcheck:\n", "    health_check:\n", 1))
    res = docker_stack_config(tmp_path, required_env(), broken)
    assert res.returncode != 0
    assert "health_check" in res.stderr


def test_the_aws_keys_file_adds_a_secret_without_dropping_the_others(tmp_path: Path) -> None:
    res = docker_stack_config(tmp_path, required_env(), STACK, AWS_KEYS)
    assert res.returncode == 0, res.stderr
    autoscaler = yaml.safe_load(res.stdout)["services"]["autoscaler"]
    secrets = {s["source"] for s in autoscaler["secrets"]}
    assert secrets == {
        "aws_credentials",
        "autoscaler_webhook_token",
        "slack_webhook_url",
        "smtp_password",
    }
    env = autoscaler["environment"]
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/aws_credentials"
    assert env["AUTOSCALER_PROMETHEUS_URL"] == "http://prometheus:9090"


def test_the_aws_role_file_hands_the_role_to_the_autoscaler_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer runs on the host's network (zero hops from the metadata service) beside
    the autoscaler, which alone mounts the volume, read-only, and is told the file."""
    res = docker_stack_config(tmp_path, required_env(), STACK, AWS_ROLE)
    assert res.returncode == 0, res.stderr
    services = yaml.safe_load(res.stdout)["services"]
    writer, autoscaler = services["aws-credentials"], services["autoscaler"]
    assert set(writer["networks"]) == {"hostnet"}
    assert yaml.safe_load(res.stdout)["networks"]["hostnet"]["name"] == "host"
    out = writer["command"][writer["command"].index("--out") + 1]
    assert writer["image"] == autoscaler["image"]
    placement = writer["deploy"]["placement"]["constraints"]
    assert placement == autoscaler["deploy"]["placement"]["constraints"]
    env = autoscaler["environment"]
    assert env["AUTOSCALER_AWS_CREDENTIALS_FILE"] == out
    assert env["AUTOSCALER_PROMETHEUS_URL"] == "http://prometheus:9090"  # merged, not replaced
    mounts = {v["source"]: v for v in autoscaler["volumes"] if v["type"] == "volume"}
    assert mounts["aws-role"]["target"] == str(Path(out).parent)
    assert mounts["aws-role"].get("read_only") is True
    assert "autoscaler-ledger" in mounts
    others = [
        name
        for name, svc in services.items()
        if name not in ("aws-credentials", "autoscaler")
        and any(v.get("source") == "aws-role" for v in svc.get("volumes", []))
    ]
    assert others == []
    monkeypatch.setenv("AUTOSCALER_AWS_CREDENTIALS_FILE", out)
    from autoscaler.settings import load_settings

    assert load_settings().aws_credentials_file == Path(out)


# ---------------------------------------------------------------- what each service needs


def _services() -> dict[str, Any]:
    services: dict[str, Any] = raw_stack()["services"]
    return services


@pytest.mark.parametrize("name", sorted(_services()))
def test_service_has_healthcheck_limits_update_and_rollback(name: str) -> None:
    svc = _services()[name]
    assert svc["healthcheck"]["test"]
    deploy = svc["deploy"]
    for kind in ("limits", "reservations"):
        assert {"cpus", "memory"} <= set(deploy["resources"][kind]), kind
    assert deploy["update_config"]["failure_action"] == "rollback"
    assert deploy["rollback_config"]["order"]
    assert deploy["restart_policy"]["condition"] == "any"
    assert svc["logging"]["options"]["max-size"]


def _named_volumes(svc: dict[str, Any]) -> list[str]:
    out = []
    for v in svc.get("volumes", []):
        source = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
        if source and not source.startswith(("/", ".")):
            out.append(source)
    return out


@pytest.mark.parametrize("name", sorted(n for n, s in _services().items() if _named_volumes(s)))
def test_a_service_with_a_volume_never_runs_two_tasks_on_it(name: str) -> None:
    deploy = _services()[name]["deploy"]
    assert deploy["update_config"]["order"] == "stop-first"
    if deploy.get("mode") != "global":
        # A local volume exists on one node only: the service must not move.
        assert "node.labels.shiny.data == true" in deploy["placement"]["constraints"]
        assert deploy["replicas"] == 1


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n, s in _services().items()
        if any("docker.sock" in str(v) for v in s.get("volumes", []))
    ),
)
def test_a_service_with_the_docker_socket_runs_on_a_manager(name: str) -> None:
    assert "node.role == manager" in _services()[name]["deploy"]["placement"]["constraints"]


def test_one_autoscaler_at_a_time() -> None:
    deploy = _services()["autoscaler"]["deploy"]
    assert deploy["replicas"] == 1
    assert deploy["update_config"]["order"] == "stop-first"


def test_secrets_are_external_and_each_one_is_used() -> None:
    stack = raw_stack()
    declared = stack["secrets"]
    assert all(spec == {"external": True} for spec in declared.values())
    used = {
        s if isinstance(s, str) else s["source"]
        for svc in stack["services"].values()
        for s in svc.get("secrets", [])
    }
    assert used == set(declared)


def test_config_names_carry_the_config_version() -> None:
    for name, spec in raw_stack()["configs"].items():
        assert spec["name"].startswith("shiny_"), name
        assert "${CONFIG_VERSION" in spec["name"], name


def test_every_config_file_exists_and_is_mounted() -> None:
    stack = raw_stack()
    used = {c["source"] for svc in stack["services"].values() for c in svc.get("configs", [])}
    assert used == set(stack["configs"])
    for name, spec in stack["configs"].items():
        assert (ROOT / spec["file"]).is_file(), f"{name}: {spec['file']}"


def _mounted(service: str) -> dict[str, str]:
    """target -> repository file of every config of a service."""
    stack = raw_stack()
    return {
        c["target"]: str(Path(stack["configs"][c["source"]]["file"]))
        for c in stack["services"][service]["configs"]
    }


def test_every_alert_rule_file_is_deployed() -> None:
    mounted = _mounted("prometheus")
    for f in sorted((ROOT / "alerting" / "rules").glob("*.yml")):
        assert mounted.get(f"/etc/prometheus/rules/{f.name}") == f"alerting/rules/{f.name}"


def test_every_dashboard_is_deployed() -> None:
    mounted = _mounted("grafana")
    for f in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        assert mounted.get(f"/etc/grafana/dashboards/{f.name}") == f"grafana/dashboards/{f.name}"


def test_every_policy_file_is_deployed() -> None:
    mounted = _mounted("autoscaler")
    files = sorted((ROOT / "rules").glob("*.y*ml"))
    assert files
    for f in files:
        target = f"/etc/autoscaler/rules/{f.name}"
        assert mounted.get(target) == f"rules/{f.name}", f"add a config for rules/{f.name}"


def test_autoscaler_environment_is_read_by_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from autoscaler.settings import Settings

    env = _services()["autoscaler"]["environment"]
    for key in [k for k in os.environ if k.startswith("AUTOSCALER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(
            key,
            str(value)
            .replace("${AUTOSCALER_DRY_RUN:-true}", "true")
            .replace("${AUTOSCALER_LOG_LEVEL:-INFO}", "INFO"),
        )
    s = Settings()
    assert s.rules == Path("/etc/autoscaler/rules")
    assert s.interval == timedelta(seconds=15)
    assert s.prometheus_url == "http://prometheus:9090"
    assert s.actuator == "tasks.shinyproxy:9090"
    assert s.influxdb_url == "http://influxdb:8086"
    assert s.influxdb_database == "shinyproxy_usagestats"
    assert s.webhook_token_file == Path("/run/secrets/autoscaler_webhook_token")
    assert s.ledger == Path("/var/lib/autoscaler/decisions.jsonl")
    assert s.dry_run is True
    secrets = {f"/run/secrets/{n}" for n in _services()["autoscaler"]["secrets"]}
    assert {v for k, v in env.items() if k.endswith("_FILE")} <= secrets


# ---------------------------------------------------------------- the parts fit together


def test_prometheus_discovers_services_of_this_stack_on_its_network() -> None:
    stack = raw_stack()
    config = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    names = set(re.findall(r"tasks\.([a-z0-9-]+)", config))
    assert names >= {"shinyproxy", "traefik", "autoscaler", "alertmanager"}
    for name in names:
        assert "monitoring" in stack["services"][name]["networks"], name
    monitoring = stack["networks"]["monitoring"]["name"]
    assert f"regex: {monitoring}\n" in config
    assert "hostnet" in stack["services"]["node-exporter"]["networks"]
    assert stack["networks"]["hostnet"] == {"external": True, "name": "host"}


def test_shinyproxy_config_matches_the_stack() -> None:
    app = yaml.safe_load(SHINYPROXY_CONFIG.read_text(encoding="utf-8"))
    proxy = app["proxy"]
    assert proxy["container-backend"] == "docker-swarm"
    urls = {u["url"] for u in proxy["usage-stats"]}
    assert urls == {"http://influxdb:8086/write?db=shinyproxy_usagestats", "micrometer"}
    assert app["management"]["prometheus"]["metrics"]["export"]["enabled"] is True
    apps_network = raw_stack()["networks"]["apps"]["name"]
    assert proxy["specs"]
    for spec in proxy["specs"]:
        assert spec["container-network"] == apps_network, spec["id"]
    influx_env = _services()["influxdb"]["environment"]
    assert influx_env["INFLUXDB_DB"] == "shinyproxy_usagestats"
    # The secret the example user's password comes from is mounted.
    assert "shinyproxy_admin_password" in _services()["shinyproxy"]["secrets"]


def test_shinyproxy_keeps_its_state_in_the_stacks_redis() -> None:
    """Several ShinyProxy replicas (rules/services.yml allows up to 3) share apps, heartbeats
    and logins only through Redis; the settings are ShinyProxy 3.x's (Spring Boot 3)."""
    app = yaml.safe_load(SHINYPROXY_CONFIG.read_text(encoding="utf-8"))
    proxy = app["proxy"]
    assert proxy["store-mode"] == "Redis"
    assert proxy["stop-proxies-on-shutdown"] is False
    # ShinyProxy refuses app recovery together with store-mode Redis
    assert not proxy.get("recover-running-proxies", False)
    assert app["spring"]["session"]["store-type"] == "redis"
    redis = app["spring"]["data"]["redis"]
    services = _services()
    assert redis["host"] in services
    assert redis["port"] == 6379
    # the password is the Docker secret both services mount (read through configtree)
    secret = re.fullmatch(r"\$\{(\w+)\}", redis["password"])
    assert secret, redis["password"]
    assert secret.group(1) in services["shinyproxy"]["secrets"]
    assert secret.group(1) in services[redis["host"]]["secrets"]
    assert secret.group(1) in raw_stack()["secrets"]
    shared = set(services["shinyproxy"]["networks"]) & set(services[redis["host"]]["networks"])
    assert shared, "ShinyProxy cannot reach Redis"
    # no app container (they join the apps network) and nothing public reaches Redis
    assert set(services[redis["host"]]["networks"]).isdisjoint({"apps", "public"})
    assert all(raw_stack()["networks"][n].get("internal") for n in shared)


def test_redis_persists_on_its_volume_and_reads_its_password_from_the_secret() -> None:
    redis = _services()["redis"]
    assert _named_volumes(redis) == ["redis-data"]
    assert redis["volumes"] == ["redis-data:/data"]
    script = redis["command"][-1]
    assert "/run/secrets/shinyproxy_redis_password" in script
    assert "appendonly yes" in script
    assert "/run/secrets/shinyproxy_redis_password" in " ".join(redis["healthcheck"]["test"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _redis_cli(port: int, *args: str, password: str | None = None) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    res = subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=10,
        env=env,
        check=False,
    )
    return res.stdout.strip()


def test_the_stacks_redis_command_and_healthcheck_work_on_a_real_redis(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    """The rendered command and healthcheck, run by a real redis-server with the secret's
    path pointed at a file here: the password is required and never on a command line."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_real_part("redis-server not installed (apt-get install redis-server)")
    svc = rendered["services"]["redis"]
    secret = tmp_path / "shinyproxy_redis_password"
    password = "b3f0c2a9d81e"
    secret.write_text(password)
    port = _free_port()
    script = svc["command"][-1].replace("/run/secrets/shinyproxy_redis_password", str(secret))
    assert "exec redis-server -" in script
    # listen on a private port and keep the data here; everything else is the stack's
    script = script.replace(
        "exec redis-server -",
        f"exec redis-server - --port {port} --bind 127.0.0.1 --dir {tmp_path}",
    )
    health = (
        svc["healthcheck"]["test"][1]
        .replace("/run/secrets/shinyproxy_redis_password", str(secret))
        .replace("redis-cli", f"redis-cli -p {port}")
    )
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen(
        [*svc["command"][:-1], script], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        deadline = time.monotonic() + 10
        while _redis_cli(port, "ping") == "" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "NOAUTH" in _redis_cli(port, "ping")
        assert "NOAUTH" in _redis_cli(port, "ping", password="wrong")
        assert _redis_cli(port, "ping", password=password) == "PONG"
        assert _redis_cli(port, "config", "get", "appendonly", password=password).split() == [
            "appendonly",
            "yes",
        ]
        assert _redis_cli(port, "config", "get", "maxmemory-policy", password=password).split() == [
            "maxmemory-policy",
            "noeviction",
        ]
        ok = subprocess.run(["sh", "-c", health], timeout=10, check=False)
        assert ok.returncode == 0
        secret.write_text("not-the-password")
        refused = subprocess.run(["sh", "-c", health], timeout=10, check=False)
        assert refused.returncode != 0
        # exec: redis-server itself is the process (it gets the stop signal), and the
        # password is not on its command line
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert cmdline.startswith("redis-server") and password not in cmdline
    finally:
        stop_child(proc, grace=10)
        log.close()
    assert proc.returncode == 0, (tmp_path / "redis.log").read_text()
    assert list(tmp_path.glob("appendonly*")), "no append-only file written"


def _start_stack_redis(
    svc: dict[str, Any], tmp_path: Path, password: str
) -> tuple[subprocess.Popen[bytes], int]:
    """The rendered redis command, on a private port with its data and secret in tmp_path."""
    secret = tmp_path / "shinyproxy_redis_password"
    secret.write_text(password)
    port = _free_port()
    script = svc["command"][-1].replace("/run/secrets/shinyproxy_redis_password", str(secret))
    script = script.replace(
        "exec redis-server -",
        f"exec redis-server - --port {port} --bind 127.0.0.1 --dir {tmp_path}",
    )
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen(
        [*svc["command"][:-1], script], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    log.close()
    deadline = time.monotonic() + 10
    while _redis_cli(port, "ping") == "" and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc, port


def _resp(*args: str) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        out += f"${len(a.encode())}\r\n{a}\r\n".encode()
    return out


def test_the_stacks_redis_sends_the_expiry_events_of_logins_without_being_told(
    rendered: dict[str, Any], tmp_path: Path
) -> None:
    """Spring Session (ShinyProxy's logins in Redis) hears of an expired login only through
    keyspace events E, g and x, which ShinyProxy switches on by CONFIG SET at its own start
    and a restarted Redis forgets. A Redis started from the stack's command, with no client
    configuring it, delivers them: a key that expires is announced on __keyevent@0__:expired."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_real_part("redis-server not installed (apt-get install redis-server)")
    password = "5e1d0c4b7a29"
    proc, port = _start_stack_redis(rendered["services"]["redis"], tmp_path, password)
    try:
        flags = _redis_cli(port, "config", "get", "notify-keyspace-events", password=password)
        value = flags.split()[1] if len(flags.split()) > 1 else ""
        assert "E" in value and (("g" in value and "x" in value) or "A" in value), flags
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sub:
            sub.sendall(_resp("AUTH", password) + _resp("SUBSCRIBE", "__keyevent@0__:expired"))
            received = b""
            while b"subscribe" not in received or not received.endswith(b":1\r\n"):
                chunk = sub.recv(4096)
                assert chunk, received
                received += chunk
            _redis_cli(port, "set", "spring:session:login", "x", "px", "1", password=password)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                # reading an expired key expires it at once (lazy expiry)
                if _redis_cli(port, "exists", "spring:session:login", password=password) == "0":
                    break
                time.sleep(0.01)
            received = b""
            while b"spring:session:login" not in received:
                chunk = sub.recv(4096)
                assert chunk, received
                received += chunk
            assert b"__keyevent@0__:expired" in received
    finally:
        stop_child(proc, grace=10)
    assert proc.returncode == 0, (tmp_path / "redis.log").read_text()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_documented_shinyproxy_versions_read_the_spring_boot_3_names_of_its_config() -> None:
    """shinyproxy/application.yml uses Spring Boot 3 names (ShinyProxy 3.1.0 moved to Spring
    Boot 3): a 3.0.x ShinyProxy ignores them silently (Redis at localhost, no metrics, the
    secrets' configtree import unread). The documented versions must all read them."""
    app = yaml.safe_load(SHINYPROXY_CONFIG.read_text(encoding="utf-8"))
    assert "redis" in app["spring"]["data"]
    assert app["management"]["prometheus"]["metrics"]["export"]["enabled"] is True
    assert "configtree:" in app["spring"]["config"]["import"]
    row = documented_variables()["SHINYPROXY_VERSION"]
    found = re.search(r"(\d+\.\d+\.\d+) or newer", row["meaning"])
    assert found, row
    minimum = _version(found.group(1))
    assert minimum >= (3, 1, 0), row
    default = stack_variables()["SHINYPROXY_VERSION"]["default"]
    assert default is not None and _version(default) >= minimum


def test_docker_gives_a_stopping_shinyproxy_its_grace_and_upgrades_it_start_first(
    rendered: dict[str, Any],
) -> None:
    """As the real docker CLI renders it: a ShinyProxy replica told to stop gets longer than
    its graceful shutdown phase before SIGKILL (Docker's default is 10 s, Spring's phase
    30 s), and an upgrade starts the new task before the old one stops (the state is in
    Redis), so the users of the old one always have a replica to reconnect to."""
    svc = rendered["services"]["shinyproxy"]
    grace = re.fullmatch(r"(\d+)s", svc["stop_grace_period"])
    assert grace, svc["stop_grace_period"]
    app = yaml.safe_load(SHINYPROXY_CONFIG.read_text(encoding="utf-8"))
    assert app["server"]["shutdown"] == "graceful"
    phase = re.fullmatch(r"(\d+)s", app["spring"]["lifecycle"]["timeout-per-shutdown-phase"])
    assert phase, app["spring"]["lifecycle"]
    assert int(grace.group(1)) > int(phase.group(1))
    assert svc["deploy"]["update_config"]["order"] == "start-first"


def test_shinyproxys_login_cookie_is_secure_as_the_stack_serves_https_only() -> None:
    """Traefik redirects port 80 to 443, so the login cookie (ShinyProxy's
    server.secure-cookies, default false) can carry Secure: without it, a browser opening
    http://DOMAIN/ sends the session in clear text before it is redirected."""
    command = _services()["traefik"]["command"]
    assert "--entrypoints.web.http.redirections.entrypoint.to=websecure" in command
    assert "--entrypoints.web.http.redirections.entrypoint.scheme=https" in command
    labels = _services()["shinyproxy"]["deploy"]["labels"]
    assert "traefik.http.routers.shinyproxy.entrypoints=websecure" in labels
    app = yaml.safe_load(SHINYPROXY_CONFIG.read_text(encoding="utf-8"))
    assert app["server"]["secure-cookies"] is True
