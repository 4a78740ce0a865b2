"""``autoscaler lab``: a real multi-node Swarm with a ShinyProxy stand-in and its backends.

Everything lives under one folder the lab owns: ``swarm/`` (the engines, see engines.py),
one folder per backend, ``lab.json`` (every endpoint and every pid the lab started) and
``lab.env`` (the sidecar's settings for this lab). ``down`` works from those files alone, so
it also cleans up after an ``up`` that was killed half way, and is safe to run twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import docker

from autoscaler.lab import teardown
from autoscaler.lab.backends import (
    Backend,
    BackendError,
    start_alertmanager,
    start_influxd,
    start_node_exporter,
    start_prometheus,
    wait_ready,
)
from autoscaler.lab.dockerd import API_VERSION
from autoscaler.lab.engines import SwarmCluster, cleanup
from autoscaler.lab.errors import LabError
from autoscaler.lab.ports import free_port
from autoscaler.lab.records import STATE_FILE

log = logging.getLogger(__name__)

LAB_JSON = "lab.json"
LAB_ENV = "lab.env"
SWARM_DIR = "swarm"
USAGE_DB = "shinyproxy_usagestats"
POOL_LABEL = "autoscaler.pool"
DEFAULT_DIR = Path("lab")
JOIN_SCRIPT = (
    'docker swarm join --token "$SWARM_JOIN_TOKEN" --advertise-addr "$WORKER_IP" '
    '--listen-addr "$WORKER_IP:2377" "$SWARM_MANAGER"'
)
"""What a worker's boot script (an instance's user data) runs to join the Swarm."""
ALERTMANAGER_CONFIG = """\
route:
  receiver: lab
  group_wait: 5s
  group_interval: 30s
receivers:
  - name: lab
"""
_MOTO = "import sys; from moto.server import main; main(sys.argv[1:5])"
STOP_GRACE = 10.0
READY_TIMEOUT = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, `kill`, and the terminal closing: the ways a user stops `lab up` or the demo."""


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait while the lab is removed.

    A user stopping a demo often presses Ctrl-C again while it tears down; the second
    KeyboardInterrupt would end the teardown half way, leave processes and the folder
    behind, and the next `up` in that folder would be refused. The teardown is bounded
    (STOP_GRACE per process), so making the user wait a few seconds is the better deal.
    Only the main thread can set signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def wait_please(signum: int, frame: object) -> None:
        # os.write: a print here could re-enter a write the signal interrupted
        with contextlib.suppress(OSError):
            os.write(2, b"still removing the lab: a few seconds more, please\n")

    previous = {sig: signal.signal(sig, wait_please) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python; nothing to restore
                signal.signal(sig, handler)


def quiet_on_closed_output(say: Callable[[str], None]) -> Callable[[str], None]:
    """``say`` that stays silent once its terminal or pipe is gone (`| head`, a closed
    window: BrokenPipeError, EIO) instead of raising where the lab is being removed."""

    def speak(message: str) -> None:
        with contextlib.suppress(OSError):
            say(message)

    return speak


@dataclass
class LabOptions:
    workers: int = 2
    service_wait_time: float = 60.0
    """ShinyProxy's proxy.docker.service-wait-time, in seconds."""
    heartbeat_timeout: float = -1.0
    """Seconds without heartbeat before the stand-in stops a session; -1 keeps them."""
    sidecar_target: str = "127.0.0.1:8080"
    """host:port of the sidecar's /metrics for Prometheus (it may be down)."""
    specs: Path | None = None
    pool: str | None = None
    """Label the first workers ``autoscaler.pool=<pool>``; None leaves them unlabelled."""
    manager_takes_sessions: bool = False
    """Keep the manager active; by default it is drained so sessions land on workers."""
    timeout: float = 120.0


@dataclass
class LabState:
    """The content of lab.json."""

    dir: str
    status: str = "starting"
    started_at: str = ""
    up_seconds: float | None = None
    workers: int = 0
    service_wait_time: float = 60.0
    endpoints: dict[str, str] = field(default_factory=dict)
    processes: dict[str, int] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return Path(self.dir)

    def save(self) -> None:
        path = self.root / LAB_JSON
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, root: Path) -> LabState:
        path = root / LAB_JSON
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise LabError(f"no lab in {root} (no {LAB_JSON}); start one with `lab up`") from None
        except (OSError, ValueError, TypeError) as e:
            raise LabError(f"cannot read {path}: {e}") from None


class RunningLab:
    """A lab started by this process; ``down()`` also reaps the processes it started."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self._children: list[Backend | subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.cluster: SwarmCluster | None = None

    @property
    def root(self) -> Path:
        return self.state.root

    def endpoint(self, name: str) -> str:
        return self.state.endpoints[name]

    def _track(self, name: str, child: Backend | subprocess.Popen[bytes]) -> None:
        self._children.append(child)
        self.state.processes[name] = child.pid
        self.state.save()

    def down(self) -> None:
        with signals_held():
            self._down()

    def _down(self) -> None:
        try:
            down(self.root)
        finally:
            if self.cluster is not None:
                # everything is gone already; this reaps the engines this process started
                with contextlib.suppress(LabError):
                    self.cluster.stop()
            for child in self._children:
                if isinstance(child, Backend):
                    child.stop(timeout=1)
                else:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(timeout=1)
            for f in self._logs:
                f.close()

    def __enter__(self) -> RunningLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


# -- up -----------------------------------------------------------------------------------


def up(
    directory: Path, options: LabOptions | None = None, say: Callable[[str], None] = log.info
) -> RunningLab:
    """Start a lab in ``directory``; on any failure everything started is removed again."""
    opts = options or LabOptions()
    if opts.workers < 0:
        raise LabError("the number of workers cannot be negative")
    root = directory.absolute()
    root.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with _locked(root):  # two `lab up` at once in one folder: the second sees the first
        if holds_lab(root):
            raise LabError(
                f"a lab already runs in {root}: run `autoscaler lab down --dir {root}` first"
            )
        state = LabState(
            dir=str(root),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            workers=opts.workers,
            service_wait_time=opts.service_wait_time,
        )
        state.save()
    lab = RunningLab(state)
    try:
        _start_all(lab, opts, say)
    except BaseException as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        # the output may be what failed (a closed terminal): removing the lab comes first
        quiet_on_closed_output(say)(f"lab up {what}: removing what was started")
        lab.down()
        raise
    state.status = "up"
    state.up_seconds = round(time.monotonic() - began, 2)
    state.save()
    _write_env(state)
    say(f"lab up in {state.up_seconds:.1f}s")
    return lab


def holds_lab(root: Path) -> bool:
    """True when ``root`` has a lab in it (running, or left by a run that was killed)."""
    return (root / LAB_JSON).exists() or (root / SWARM_DIR / STATE_FILE).exists()


def _start_all(lab: RunningLab, opts: LabOptions, say: Callable[[str], None]) -> None:
    root, ep = lab.root, lab.state.endpoints
    swarm: dict[str, Any] = {}

    def boot_swarm() -> None:
        try:
            swarm["cluster"] = SwarmCluster.start(
                root / SWARM_DIR, workers=opts.workers, timeout=opts.timeout
            )
        except BaseException as e:
            swarm["error"] = e

    booting = threading.Thread(target=boot_swarm, name="swarm-boot")
    booting.start()
    try:
        influx = start_influxd(_folder(root, "influxdb"))
        lab._track("influxd", influx)
        influx.create_database(USAGE_DB)
        ep["influxdb"] = influx.url
        ep["usage_stats_url"] = f"{influx.url}/write?db={USAGE_DB}"
        say(f"influxdb {influx.url}")
        am = start_alertmanager(_folder(root, "alertmanager"), ALERTMANAGER_CONFIG)
        lab._track("alertmanager", am)
        ep["alertmanager"] = am.url
        ne = start_node_exporter(_folder(root, "node-exporter"))
        lab._track("node_exporter", ne)
        ep["node_exporter"] = ne.url
        if importlib.util.find_spec("moto") is None:
            say("moto is not installed (pip install 'moto[server]'): no EC2/SSM endpoint")
        else:
            lab._track("moto", _start_moto(lab))
            say(f"moto (EC2, SSM) {ep['moto']}")
    finally:
        booting.join()
    if "error" in swarm:
        raise swarm["error"]
    cluster: SwarmCluster = swarm["cluster"]
    lab.cluster = cluster
    ep["docker_host"] = cluster.manager_host
    say(f"swarm of 1 manager + {opts.workers} workers, DOCKER_HOST={cluster.manager_host}")
    _shape_nodes(cluster, opts)
    lab._track("standin", _start_standin(lab, opts))
    say(f"ShinyProxy stand-in {ep['actuator']}")
    prom = start_prometheus(
        _folder(root, "prometheus"), _scrape_configs(lab, opts), alertmanager_url=am.url
    )
    lab._track("prometheus", prom)
    ep["prometheus"] = prom.url
    say(f"prometheus {prom.url}")


def _folder(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _shape_nodes(cluster: SwarmCluster, opts: LabOptions) -> None:
    api = cluster.client().api
    for node in api.nodes():
        spec = dict(node["Spec"])
        hostname = node["Description"]["Hostname"]
        if spec.get("Role") == "manager" and not opts.manager_takes_sessions:
            spec["Availability"] = "drain"
        elif spec.get("Role") == "worker" and opts.pool:
            spec["Labels"] = {**spec.get("Labels", {}), POOL_LABEL: opts.pool}
        else:
            continue
        log.debug("node %s: %s", hostname, spec)
        api.update_node(node["ID"], node["Version"]["Index"], spec)


def _launch(lab: RunningLab, name: str, args: list[str]) -> subprocess.Popen[bytes]:
    logf = (lab.root / f"{name}.log").open("ab")
    lab._logs.append(logf)
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        cwd=lab.root,
        start_new_session=True,
    )


def _start_moto(lab: RunningLab) -> subprocess.Popen[bytes]:
    for _ in range(3):
        port = free_port()
        # the lab folder is the last argument only so `down` can recognise the process
        proc = _launch(
            lab,
            "moto",
            [sys.executable, "-c", _MOTO, "-H", "127.0.0.1", "-p", str(port), str(lab.root)],
        )
        url = f"http://127.0.0.1:{port}"
        if wait_ready(f"{url}/moto-api/", proc, READY_TIMEOUT):
            lab.state.endpoints["moto"] = url
            return proc
        _kill(proc)
    raise LabError(f"moto server did not start; see {lab.root / 'moto.log'}")


def _start_standin(lab: RunningLab, opts: LabOptions) -> subprocess.Popen[bytes]:
    ep = lab.state.endpoints
    ready = lab.root / "standin.ready"
    ready.unlink(missing_ok=True)
    args = [
        sys.executable, "-m", "autoscaler.lab.standin",
        "--docker-host", ep["docker_host"],
        "--ready-file", str(ready),
        "--usage-stats-url", ep["usage_stats_url"],
        "--service-wait-time", str(opts.service_wait_time),
        "--heartbeat-timeout", str(opts.heartbeat_timeout),
    ]  # fmt: skip
    if opts.specs is not None:
        args += ["--specs", str(opts.specs.absolute())]
    proc = _launch(lab, "standin", args)
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            tail = _tail(lab.root / "standin.log")
            raise LabError(f"the ShinyProxy stand-in did not start:\n{tail}")
        time.sleep(0.05)
    port = json.loads(ready.read_text())["port"]
    url = f"http://127.0.0.1:{port}"
    if not wait_ready(f"{url}/actuator/health", proc, READY_TIMEOUT):
        _kill(proc)
        raise LabError(f"the stand-in does not answer:\n{_tail(lab.root / 'standin.log')}")
    ep["actuator"] = url
    ep["shinyproxy"] = url
    return proc


def _scrape_configs(lab: RunningLab, opts: LabOptions) -> list[dict[str, Any]]:
    ep = lab.state.endpoints

    def target(url: str) -> str:
        return url.split("://", 1)[1]

    ep["sidecar_metrics"] = f"http://{opts.sidecar_target}/metrics"
    return [
        {
            "job_name": "shinyproxy",
            "metrics_path": "/actuator/prometheus",
            "static_configs": [{"targets": [target(ep["actuator"])]}],
        },
        {"job_name": "autoscaler", "static_configs": [{"targets": [opts.sidecar_target]}]},
        {"job_name": "node", "static_configs": [{"targets": [target(ep["node_exporter"])]}]},
    ]


def _write_env(state: LabState) -> None:
    ep = state.endpoints
    lines = [
        f"DOCKER_HOST={ep['docker_host']}",
        f"AUTOSCALER_DOCKER_HOST={ep['docker_host']}",
        f"AUTOSCALER_PROMETHEUS_URL={ep['prometheus']}",
        f"AUTOSCALER_ACTUATOR={ep['actuator']}",
        f"AUTOSCALER_INFLUXDB_URL={ep['influxdb']}",
        f"AUTOSCALER_INFLUXDB_DATABASE={USAGE_DB}",
        # pools with `provider: local` boot and retire this lab's workers
        f"AUTOSCALER_LAB_ROOT={state.root}",
    ]
    if "moto" in ep:
        lines += [
            f"AWS_ENDPOINT_URL={ep['moto']}",
            "AWS_ACCESS_KEY_ID=testing",
            "AWS_SECRET_ACCESS_KEY=testing",
            "AWS_DEFAULT_REGION=us-east-1",
        ]
    (state.root / LAB_ENV).write_text("\n".join(lines) + "\n")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


# -- down ---------------------------------------------------------------------------------


def _ancestors() -> set[int]:
    """This process and its parents: never stopped, even if their command names the lab."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        fields = stat.rpartition(")")[2].split()
        pid = int(fields[1]) if len(fields) > 1 else 0
    return pids


def down(directory: Path) -> list[str]:
    """Stop everything a lab in ``directory`` started and remove it; returns what was done.

    Works from lab.json and engines.json alone, after a crash too; a no-op when nothing is
    there. Raises LabError naming whatever could not be removed.
    """
    with signals_held():  # a Ctrl-C half way would leave half a lab
        return _down(directory.absolute())


def _down(root: Path) -> list[str]:
    done: list[str] = []
    problems: list[str] = []
    marker = str(root)
    state_pids: dict[str, int] = {}
    with contextlib.suppress(LabError):
        state_pids = LabState.load(root).processes
    # the stand-in first: it is the one writing to the Swarm
    order = sorted(state_pids.items(), key=lambda kv: kv[0] != "standin")
    for name, pid in order:
        if teardown.is_alive(pid) and teardown.owns(pid, marker):
            problems += [f"{name}: {p}" for p in _stop([pid])]
            done.append(f"stopped {name} (pid {pid})")
    if (root / SWARM_DIR / STATE_FILE).exists():
        try:
            cleanup(root / SWARM_DIR)
            done.append("removed the swarm engines, namespaces and links")
        except LabError as e:
            problems.append(str(e))
    # anything else naming the folder: a backend an interrupted `up` had not recorded yet
    strays = _processes_naming(root)
    if strays:
        problems += _stop(strays)
        done.append(f"stopped {len(strays)} unrecorded process(es)")
    problems += teardown.unmount_all(root)
    if root.exists() and not problems:
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            problems.append(f"folder {root} could not be removed")
        else:
            done.append(f"removed {root}")
    if problems:
        raise LabError("lab down incomplete: " + "; ".join(problems))
    return done


def _processes_naming(root: Path) -> list[int]:
    """Processes with ``root`` (or a path below it) in their command line, except our own."""
    marker, spare = str(root), _ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spare:
            continue
        parts = teardown.cmdline(int(entry.name))
        if _started_by_a_lab(parts) and any(p == marker or marker + "/" in p for p in parts):
            found.append(int(entry.name))
    return found


_LAB_BINARIES = frozenset(
    {"prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "influxd"}
)


def _started_by_a_lab(parts: list[str]) -> bool:
    """Only the kinds of process a lab starts (never, say, an editor showing a lab file)."""
    if not parts:
        return False
    if Path(parts[0]).name in _LAB_BINARIES:
        return True
    return "autoscaler.lab.standin" in parts or _MOTO in parts


def _stop(pids: list[int]) -> list[str]:
    stuck = teardown.stop_processes(pids, STOP_GRACE)
    return [f"pid {p} would not die" for p in stuck]


# -- workers ------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One change to the lab at a time: claiming the folder, or the swarm's engines
    (engines.json is rewritten whole). Not reentrant: flock locks per open file."""
    with (root / ".lab.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def attach(root: Path) -> SwarmCluster:
    """The running swarm of the lab in ``root``, as a SwarmCluster, from another process."""
    swarm_dir = root.absolute() / SWARM_DIR
    if not (swarm_dir / STATE_FILE).exists():
        raise LabError(f"no lab swarm in {root}; start one with `lab up`")
    return SwarmCluster.attach(swarm_dir)


@dataclass(frozen=True)
class BootedWorker:
    name: str
    node_id: str
    ip: str
    boot_seconds: float


def boot_worker(
    directory: Path,
    name: str | None = None,
    boot_delay: float = 0.0,
    join_script: str | None = JOIN_SCRIPT,
    labels: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> BootedWorker:
    """Boot one more engine in a new namespace, like a cloud instance, and join it.

    Waits ``boot_delay`` seconds first (cloud boot time), then runs ``join_script`` inside
    the new engine's namespaces (DOCKER_HOST, SWARM_JOIN_TOKEN, SWARM_MANAGER, WORKER_IP and
    WORKER_NAME set; None joins through the API) and puts ``labels`` on the node.
    """
    began = time.monotonic()
    if boot_delay > 0:
        time.sleep(boot_delay)
    root = directory.absolute()
    with _locked(root):
        cluster = attach(root)
        try:
            worker = cluster.add_worker(
                name, join=join_script if join_script is not None else True, timeout=timeout
            )
            node_id = worker.node_id or ""
            if labels and node_id:
                api = cluster.client().api
                node = api.inspect_node(node_id)
                spec = dict(node["Spec"])
                spec["Labels"] = {**spec.get("Labels", {}), **labels}
                api.update_node(node_id, node["Version"]["Index"], spec)
        finally:
            cluster.client().close()
    return BootedWorker(worker.name, node_id, worker.ip, round(time.monotonic() - began, 2))


def retire_worker(directory: Path, name: str) -> None:
    """The reverse of boot_worker: leave the swarm, stop the engine, remove node and namespace."""
    root = directory.absolute()
    with _locked(root):
        cluster = attach(root)
        try:
            cluster.remove_worker(name)
        finally:
            cluster.client().close()


# -- memory -------------------------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) for every process we can read."""
    page = os.sysconf("SC_PAGE_SIZE")
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            rss_pages = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        fields = stat.rpartition(")")[2].split()
        table[int(entry.name)] = (int(fields[1]), rss_pages * page)
    return table


def memory(directory: Path) -> dict[str, int]:
    """Resident memory (bytes) of everything the lab runs, by part; ``total`` sums them.

    A part is a recorded process with its descendants; the engines count with containerd,
    the shims and the session containers (found by the lab folder in their command line).
    """
    root = directory.absolute()
    state = LabState.load(root)
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int, seen: set[int]) -> int:
        if pid in seen or pid not in table:
            return 0
        seen.add(pid)
        return table[pid][1] + sum(tree(c, seen) for c in children.get(pid, []))

    seen: set[int] = set()
    parts = {name: tree(pid, seen) for name, pid in state.processes.items()}
    marker = str(root / SWARM_DIR) + "/"
    engines = 0
    for pid in sorted(table):
        if pid not in seen and any(marker in p for p in teardown.cmdline(pid)):
            engines += tree(pid, seen)
    parts["engines"] = engines
    parts["total"] = sum(parts.values())
    return parts


# -- status -------------------------------------------------------------------------------

COUNTERS = ("userLogins", "appStarts", "appStops", "appCrashes", "startFailed")


def status(directory: Path, timeout: float = 3.0) -> dict[str, Any]:
    """Nodes, live sessions per node, the stand-in's counters and which endpoints answer."""
    state = LabState.load(directory.absolute())
    out: dict[str, Any] = {
        "dir": state.dir,
        "status": state.status,
        "up_seconds": state.up_seconds,
        "endpoints": {},
        "nodes": [],
        "sessions": {},
    }
    for name, url in state.endpoints.items():
        out["endpoints"][name] = {"url": url, "up": _answers(name, url, timeout)}
    host = state.endpoints.get("docker_host")
    if host:
        try:
            out["nodes"], out["sessions"] = _swarm_status(host, timeout)
        except (docker.errors.DockerException, OSError) as e:
            out["swarm_error"] = f"cannot read the swarm: {type(e).__name__}: {e}"
    actuator = state.endpoints.get("actuator")
    if actuator:
        out["sessions"]["counters"] = _counters(actuator, timeout)
    return out


def _answers(name: str, url: str, timeout: float) -> bool:
    import requests

    if name == "docker_host":
        try:
            client = docker.APIClient(base_url=url, version=API_VERSION, timeout=int(timeout))
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (docker.errors.DockerException, OSError):
            return False
    path = {
        "prometheus": "/-/ready",
        "alertmanager": "/-/ready",
        "influxdb": "/ping",
        "actuator": "/actuator/health",
        "shinyproxy": "/actuator/health",
        "moto": "/moto-api/",
        "node_exporter": "/metrics",
    }.get(name)
    target = url if path is None else url + path
    if name == "usage_stats_url":
        target = url.split("/write", 1)[0] + "/ping"
    try:
        return requests.get(target, timeout=timeout).status_code < 400
    except requests.RequestException:
        return False


def _swarm_status(host: str, timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    api = docker.APIClient(base_url=host, version=API_VERSION, timeout=int(timeout))
    try:
        sessions = {
            s["ID"]
            for s in api.services()
            if "openanalytics.eu/sp-proxied-app"
            in s["Spec"]["TaskTemplate"].get("ContainerSpec", {}).get("Labels", {})
        }
        live: dict[str, int] = {}
        pending = 0
        for t in api.tasks(filters={"desired-state": "running"}):
            if t["ServiceID"] not in sessions:
                continue
            if t["Status"]["State"] == "running":
                live[t.get("NodeID", "")] = live.get(t.get("NodeID", ""), 0) + 1
            else:
                pending += 1
        nodes = [
            {
                "id": n["ID"],
                "hostname": n["Description"]["Hostname"],
                "role": n["Spec"]["Role"],
                "availability": n["Spec"]["Availability"],
                "state": n["Status"]["State"],
                "pool": n["Spec"].get("Labels", {}).get(POOL_LABEL, ""),
                "sessions": live.get(n["ID"], 0),
            }
            for n in api.nodes()
        ]
    finally:
        api.close()
    nodes.sort(key=lambda n: (n["role"] != "manager", n["hostname"]))
    return nodes, {"live": sum(live.values()), "pending": pending, "services": len(sessions)}


def _counters(actuator: str, timeout: float) -> dict[str, float] | None:
    import math

    import requests
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = requests.get(f"{actuator}/actuator/prometheus", timeout=timeout).text
    except requests.RequestException:
        return None
    totals: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name in COUNTERS or fam.name == "absolute_apps_running":
            for s in fam.samples:
                if not math.isnan(s.value):
                    totals[fam.name] = totals.get(fam.name, 0.0) + s.value
    return totals


__all__ = [
    "JOIN_SCRIPT",
    "BackendError",
    "BootedWorker",
    "LabOptions",
    "LabState",
    "RunningLab",
    "attach",
    "boot_worker",
    "down",
    "memory",
    "retire_worker",
    "status",
    "up",
]
