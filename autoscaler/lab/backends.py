"""Start and stop the real Prometheus, Alertmanager, node exporter and InfluxDB binaries.

Each runs in a folder the caller owns (config, data, ``<name>.log``), listens on a free
127.0.0.1 port, and is returned only once it answers its readiness endpoint. A process
that dies or never becomes ready raises BackendError with the tail of its log.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar
from urllib.parse import urlsplit

import requests
import yaml

from autoscaler.lab.ports import free_port, owns_listener

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 3

B = TypeVar("B", bound="Backend")


class BackendError(RuntimeError):
    """A backend could not be started."""

    def __init__(self, message: str, *, port_clash: bool = False) -> None:
        super().__init__(message)
        self.port_clash = port_clash


class Backend:
    """One running backend process."""

    def __init__(
        self, name: str, process: subprocess.Popen[bytes], url: str, log_path: Path, log: IO[bytes]
    ) -> None:
        self.name = name
        self.url = url
        self.log_path = log_path
        self._process = process
        self._log = log

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Safe to call again."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "alive" if self.alive() else "stopped"
        return f"<{type(self).__name__} {self.name} pid={self.pid} {self.url} {state}>"


class PrometheusBackend(Backend):
    config_path: Path

    def reload(self) -> None:
        """Re-read the config file (started with --web.enable-lifecycle)."""
        resp = requests.post(f"{self.url}/-/reload", timeout=10)
        if resp.status_code != 200:
            raise BackendError(f"prometheus reload failed: HTTP {resp.status_code} {resp.text}")


class InfluxBackend(Backend):
    def create_database(self, name: str) -> None:
        self.execute(f'CREATE DATABASE "{_influx_ident(name)}"')

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE "{_influx_ident(name)}"')

    def execute(self, influxql: str) -> None:
        """Run a management statement; raise BackendError if InfluxDB reports an error."""
        resp = requests.post(f"{self.url}/query", data={"q": influxql}, timeout=10)
        body = (
            resp.json()
            if resp.headers.get("Content-Type", "").startswith("application/json")
            else {}
        )
        errors = [r["error"] for r in body.get("results", []) if "error" in r]
        if resp.status_code != 200 or errors or "error" in body:
            raise BackendError(f"influx {influxql!r}: HTTP {resp.status_code} {errors or body}")


def _influx_ident(name: str) -> str:
    if '"' in name or "\\" in name or not name:
        raise ValueError(f"invalid InfluxDB identifier {name!r}")
    return name


def require_binary(binary: str) -> str:
    """Full path of ``binary``, or BackendError naming the Debian package to install."""
    path = shutil.which(binary)
    if path is None:
        raise BackendError(
            f"{binary} not found on PATH (apt-get install {_PACKAGES.get(binary, binary)})"
        )
    return path


_PACKAGES = {
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "influxd": "influxdb",
}


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = READY_TIMEOUT,
    ok: Iterable[int] = (200,),
) -> bool:
    """Poll ``url`` until it answers one of ``ok``; False if the process exits or time runs out.

    With ``process``, the answer counts only if that process holds the listening socket:
    another program that took the port first is not our backend.
    """
    wanted = set(ok)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            answered = requests.get(url, timeout=1).status_code in wanted
        except requests.RequestException:
            answered = False
        if answered and (process is None or owns_listener(process.pid, port) is not False):
            return True
        time.sleep(0.1)
    return False


def _launch(
    cls: type[B],
    name: str,
    args: Sequence[str],
    directory: Path,
    url: str,
    ready_path: str,
    ready_ok: Iterable[int] = (200,),
    timeout: float = READY_TIMEOUT,
) -> B:
    log_path = directory / f"{name}.log"
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    except OSError:
        log.close()
        raise
    backend = cls(name, process, url, log_path, log)
    if wait_ready(url + ready_path, process, timeout, ready_ok):
        return backend
    died = process.poll() is not None
    backend.stop()
    tail = backend.log_tail()
    what = f"exited with code {process.returncode}" if died else f"not ready after {timeout:g}s"
    raise BackendError(
        f"{name} {what}; last lines of {log_path}:\n{tail}",
        port_clash="address already in use" in tail.lower(),
    )


def _with_fresh_ports(attempt: Callable[[], B]) -> B:
    """Retry with new ports when another process grabbed ours between check and bind."""
    for n in range(_PORT_ATTEMPTS):
        try:
            return attempt()
        except BackendError as e:
            if not e.port_clash or n == _PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- prometheus


def prometheus_config(
    scrape_configs: list[dict[str, Any]],
    rule_files: Sequence[str | Path] = (),
    alertmanager_url: str | None = None,
    scrape_interval: str = "5s",
) -> dict[str, Any]:
    """The prometheus.yml content as a dict."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": scrape_configs,
    }
    if rule_files:
        config["rule_files"] = [str(Path(f).resolve()) for f in rule_files]
    if alertmanager_url:
        am = urlsplit(alertmanager_url)
        target: dict[str, Any] = {
            "scheme": am.scheme or "http",
            "static_configs": [{"targets": [am.netloc]}],
        }
        if am.path.strip("/"):
            target["path_prefix"] = am.path
        config["alerting"] = {"alertmanagers": [target]}
    return config


def start_prometheus(
    directory: Path | str,
    scrape_configs: list[dict[str, Any]],
    rule_files: Sequence[str | Path] = (),
    alertmanager_url: str | None = None,
    scrape_interval: str = "5s",
    name: str = "prometheus",
    timeout: float = READY_TIMEOUT,
    extra_args: Sequence[str] = (),
) -> PrometheusBackend:
    """Prometheus with these scrape configs; ``extra_args`` go to the command line
    (e.g. ``--rules.alert.resend-delay=1s`` so alerts are re-sent quickly in tests)."""
    d = Path(directory)
    binary = require_binary("prometheus")
    config_path = d / f"{name}.yml"
    config = prometheus_config(scrape_configs, rule_files, alertmanager_url, scrape_interval)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def attempt() -> PrometheusBackend:
        port = free_port()
        backend = _launch(
            PrometheusBackend,
            name,
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={d / (name + '-data')}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                *extra_args,
            ],
            d,
            f"http://127.0.0.1:{port}",
            "/-/ready",
            timeout=timeout,
        )
        backend.config_path = config_path
        return backend

    return _with_fresh_ports(attempt)


# ---------------------------------------------------------------- alertmanager


def start_alertmanager(
    directory: Path | str,
    config_yaml: str,
    name: str = "alertmanager",
    timeout: float = READY_TIMEOUT,
) -> Backend:
    d = Path(directory)
    binary = require_binary("prometheus-alertmanager")
    config_path = d / f"{name}.yml"
    config_path.write_text(config_yaml, encoding="utf-8")

    def attempt() -> Backend:
        port = free_port()
        return _launch(
            Backend,
            name,
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={d / (name + '-data')}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            d,
            f"http://127.0.0.1:{port}",
            "/-/ready",
            timeout=timeout,
        )

    return _with_fresh_ports(attempt)


# ---------------------------------------------------------------- node exporter


def start_node_exporter(
    directory: Path | str, name: str = "node-exporter", timeout: float = READY_TIMEOUT
) -> Backend:
    """Node exporter with a textfile collector folder ``<dir>/<name>-textfile``."""
    d = Path(directory)
    binary = require_binary("prometheus-node-exporter")
    textfile = d / f"{name}-textfile"
    textfile.mkdir(exist_ok=True)

    def attempt() -> Backend:
        port = free_port()
        return _launch(
            Backend,
            name,
            [
                binary,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--collector.textfile.directory={textfile}",
            ],
            d,
            f"http://127.0.0.1:{port}",
            "/metrics",
            timeout=timeout,
        )

    return _with_fresh_ports(attempt)


# ---------------------------------------------------------------- influxdb


def influxd_config(directory: Path, http_port: int, rpc_port: int) -> str:
    """An influxd 1.x config: everything under ``directory``, loopback only, no auth."""
    return f"""\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{directory / "meta"}"

[data]
  dir = "{directory / "data"}"
  wal-dir = "{directory / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""


def start_influxd(
    directory: Path | str, name: str = "influxd", timeout: float = READY_TIMEOUT
) -> InfluxBackend:
    d = Path(directory)
    binary = require_binary("influxd")
    home = d / name
    home.mkdir(exist_ok=True)
    config_path = d / f"{name}.conf"

    def attempt() -> InfluxBackend:
        http_port, rpc_port = free_port(), free_port()
        while rpc_port == http_port:
            rpc_port = free_port()
        config_path.write_text(influxd_config(home, http_port, rpc_port), encoding="utf-8")
        return _launch(
            InfluxBackend,
            name,
            [binary, "run", "-config", str(config_path)],
            d,
            f"http://127.0.0.1:{http_port}",
            "/ping",
            ready_ok=(204,),
            timeout=timeout,
        )

    return _with_fresh_ports(attempt)
