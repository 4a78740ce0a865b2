"""A real multi-node Docker Swarm on this machine: one dockerd per node, all under one folder.

Every engine (the manager too) runs in a network namespace of its own, plugged into a bridge
on a private 10.2xx.y.0/24: the engines' own networks (docker_gwbridge, ingress, VXLAN ports)
then never meet those of another lab running at the same time. The manager's socket is a
unix socket in the lab folder, reachable from the host like any other.

Each piece is written to ``<root>/engines.json`` before it is created, so ``cleanup(root)``
can undo a run that crashed half way, from that file alone.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import docker
import docker.errors

from autoscaler.lab import dockerd, netns, teardown
from autoscaler.lab.dockerd import API_VERSION, CONNECT_ERRORS, log_tail
from autoscaler.lab.errors import LabError
from autoscaler.lab.image import BUSYBOX_IMAGE, busybox_tar, import_image
from autoscaler.lab.records import STATE_FILE, EngineRecord, LabRecord, load_record, save_record
from autoscaler.lab.removal import (
    STOP_GRACE,
    cleanup,
    remove_engine_leftovers,
    remove_lab,
    stop_engines,
)

__all__ = [
    "API_VERSION",
    "STATE_FILE",
    "JoinInfo",
    "LabRecord",
    "SwarmCluster",
    "WorkerEngine",
    "cleanup",
]

log = logging.getLogger(__name__)

MANAGER = "manager"
SWARM_PORT = 2377
ROOT_MAX_LEN = 60
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""Unix sockets (containerd's sit four levels below the root) must stay under 108 bytes."""


@dataclass(frozen=True)
class WorkerEngine:
    name: str
    """Also the node's hostname."""
    ip: str
    socket: Path
    pid: int
    netns: str
    veth: str
    node_id: str | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, version=API_VERSION, timeout=30)


@dataclass(frozen=True)
class JoinInfo:
    token: str
    manager_addr: str
    """host:port of the manager's swarm listener."""


JoinHook = Callable[[WorkerEngine, JoinInfo], None]
Join = bool | str | JoinHook
"""True: join through the API; False: leave it alone; a string: a shell script run on the
worker (like an instance's user data) with DOCKER_HOST, SWARM_JOIN_TOKEN, SWARM_MANAGER,
WORKER_IP and WORKER_NAME set; a callable: called with the worker and the join details."""


class SwarmCluster:
    """A manager and N workers, each a dockerd of its own. Always ``stop()`` it."""

    def __init__(self, root_dir: Path, record: LabRecord) -> None:
        self.root_dir = root_dir
        self.start_seconds = 0.0
        self._record = record
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._swarm_ready = threading.Event()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._image: bytes | None = None
        self._client: docker.DockerClient | None = None
        self._join_token = ""
        self._stopped = False

    # -- starting -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        root_dir: Path,
        workers: int = 2,
        image: bool = True,
        timeout: float = 90.0,
        *,
        suffix: str | None = None,
    ) -> SwarmCluster:
        """Boot the manager and ``workers`` workers in parallel and form the swarm.

        Raises LabError (with the failing engine's log tail) when anything is not up within
        ``timeout`` seconds; whatever was started by then is torn down first. ``suffix``
        (six hex digits, random by default) is in every namespace, link and cgroup name.
        """
        suffix = suffix or secrets.token_hex(3)
        if not re.fullmatch(r"[0-9a-f]{6}", suffix):
            raise LabError(f"suffix must be six hex digits, not {suffix!r}")
        root = Path(root_dir).absolute()
        if len(str(root)) > ROOT_MAX_LEN:
            raise LabError(
                f"lab folder path too long for unix sockets (max {ROOT_MAX_LEN}): {root}"
            )
        if (root / STATE_FILE).exists():
            raise LabError(f"{root} already holds a lab; run cleanup({str(root)!r}) first")
        root.mkdir(parents=True, exist_ok=True)
        cluster = cls(root, LabRecord(suffix=suffix))
        cluster._save()
        began = time.monotonic()
        try:
            cluster._boot(workers, image, began + timeout)
        except BaseException as exc:
            try:
                cluster.stop()
            except LabError as stop_exc:
                exc.add_note(f"and tearing down what had started failed: {stop_exc}")
            raise
        cluster.start_seconds = time.monotonic() - began
        log.info("swarm lab up in %.1fs at %s", cluster.start_seconds, root)
        return cluster

    @classmethod
    def attach(cls, root_dir: Path) -> SwarmCluster:
        """The running lab in ``root_dir``, started by another process, from its engines.json.

        Workers can be added and removed through it; new workers get the lab image when the
        manager has it. Only one process at a time may change a lab: engines.json is
        rewritten whole by each change.
        """
        root = Path(root_dir).absolute()
        record = load_record(root)
        if record is None or MANAGER not in record.engines:
            raise LabError(f"no lab in {root}")
        cluster = cls(root, record)
        api = cluster.client().api
        try:
            cluster._join_token = api.inspect_swarm()["JoinTokens"]["Worker"]
            has_image = bool(api.images(name=BUSYBOX_IMAGE))
        except CONNECT_ERRORS as exc:
            raise LabError(f"the lab's manager does not answer: {exc}") from exc
        if has_image:
            cluster._image = busybox_tar()
        cluster._swarm_ready.set()
        return cluster

    def _boot(self, workers: int, image: bool, deadline: float) -> None:
        self._setup_bridge()
        if image:
            self._image = busybox_tar()
        records = [self._new_record(MANAGER, "manager", "m", 2)]
        records += [self._new_worker_record(None) for _ in range(workers)]
        with ThreadPoolExecutor(max_workers=len(records)) as pool:
            futures = [pool.submit(self._boot_node, rec, deadline) for rec in records]
            failures = []
            for future in as_completed(futures):
                exc = future.exception()
                if exc is not None:
                    self._cancel.set()  # the other engines stop waiting at once
                    failures.append(exc)
        if failures:
            raise failures[0]
        self.wait_nodes_ready([r.name for r in records], deadline - time.monotonic())
        _check_time(deadline, "the swarm")

    def _setup_bridge(self) -> None:
        rng = random.Random(secrets.randbits(64))
        bridge = f"swb-{self._record.suffix}"
        for _ in range(5):
            subnet = netns.pick_subnet(rng, netns.used_networks())
            with self._lock:
                self._record.bridge, self._record.subnet = bridge, str(subnet)
                self._save()
            netns.create_bridge(bridge, IPv4Interface(f"{subnet[1]}/{subnet.prefixlen}"))
            if not netns.subnet_clash(bridge, subnet):
                return
            netns.delete_link(bridge)  # another lab picked the same subnet this instant
        raise LabError("could not find an unused subnet for the lab bridge")

    def _new_record(self, name: str, role: str, tag: str, host_part: int) -> EngineRecord:
        suffix = self._record.suffix
        subnet = IPv4Network(self._record.subnet or "")
        if host_part >= subnet.num_addresses - 1:
            raise LabError(f"no address left in {subnet} for {name}")
        rec = EngineRecord(
            name=name,
            role=role,
            tag=tag,
            dir=str(self.root_dir / tag),
            netns=f"swl-{suffix}-{tag}",
            veth=f"swv-{suffix}-{tag}",
            ip=str(subnet[host_part]),
            cgroup_parent=f"/swl-{suffix}-{tag}",
        )
        with self._lock:
            if name in self._record.engines:
                raise LabError(f"an engine named {name} already exists")
            self._record.engines[name] = rec
            self._save()
        return rec

    def _new_worker_record(self, name: str | None) -> EngineRecord:
        if name is not None and not HOSTNAME.fullmatch(name):
            raise LabError(f"a worker name is its hostname: {name!r} is not a valid one")
        with self._lock:
            index = self._record.next_worker
            self._record.next_worker += 1
        return self._new_record(name or f"worker-{index}", "worker", f"w{index}", 2 + index)

    def _boot_node(self, rec: EngineRecord, deadline: float) -> None:
        self._boot_engine(rec, deadline)
        _check_time(deadline, f"engine {rec.name}")
        if rec.role == "manager":
            self._init_swarm(rec)
        else:
            self._wait_event(self._swarm_ready, deadline, "swarm init on the manager")
            self._join_api(rec)

    def _boot_engine(self, rec: EngineRecord, deadline: float) -> None:
        if self._cancel.is_set() or not netns.link_exists(self._record.bridge or "-"):
            raise LabError("the lab is stopped")
        prefix = IPv4Network(self._record.subnet or "").prefixlen
        netns.create_namespace(
            rec.netns, rec.veth, self._record.bridge or "", IPv4Interface(f"{rec.ip}/{prefix}")
        )
        proc = self._launch(rec)
        api = dockerd.wait_ready(rec, proc, deadline, self._cancel.is_set)
        try:
            if self._image is not None:
                import_image(api, self._image)
        finally:
            api.close()

    def _launch(self, rec: EngineRecord) -> subprocess.Popen[bytes]:
        proc = dockerd.launch(rec, self._record.suffix)
        with self._lock:
            self._procs[rec.name] = proc
            rec.pid = proc.pid
            self._save()
        return proc

    def _wait_event(self, event: threading.Event, deadline: float, what: str) -> None:
        while not event.wait(0.1):
            if self._cancel.is_set() or time.monotonic() > deadline:
                raise LabError(f"{what} did not happen in time")

    def _init_swarm(self, rec: EngineRecord) -> None:
        api = docker.APIClient(base_url=rec.host, version=API_VERSION, timeout=30)
        try:
            api.init_swarm(advertise_addr=rec.ip, listen_addr=f"{rec.ip}:{SWARM_PORT}")
            self._join_token = api.inspect_swarm()["JoinTokens"]["Worker"]
            with self._lock:
                rec.node_id = api.info()["Swarm"]["NodeID"]
                self._save()
        except CONNECT_ERRORS as exc:
            raise LabError(f"swarm init on {rec.name} failed: {exc}{log_tail(rec)}") from exc
        finally:
            api.close()
        self._swarm_ready.set()

    def _join_api(self, rec: EngineRecord) -> None:
        api = docker.APIClient(base_url=rec.host, version=API_VERSION, timeout=30)
        try:
            api.join_swarm(
                remote_addrs=[self.manager_addr],
                join_token=self._join_token,
                listen_addr=f"{rec.ip}:{SWARM_PORT}",
                advertise_addr=rec.ip,
            )
        except CONNECT_ERRORS as exc:
            raise LabError(f"{rec.name} could not join the swarm: {exc}{log_tail(rec)}") from exc
        finally:
            api.close()

    # -- the running lab ----------------------------------------------------------------

    @property
    def manager(self) -> EngineRecord:
        return self._record.engines[MANAGER]

    @property
    def manager_host(self) -> str:
        return self.manager.host

    @property
    def manager_addr(self) -> str:
        return f"{self.manager.ip}:{SWARM_PORT}"

    @property
    def suffix(self) -> str:
        return self._record.suffix

    @property
    def subnet(self) -> str:
        return self._record.subnet or ""

    @property
    def workers(self) -> tuple[WorkerEngine, ...]:
        with self._lock:
            recs = [r for r in self._record.engines.values() if r.role == "worker"]
        return tuple(_worker_view(r) for r in recs)

    def worker(self, name: str) -> WorkerEngine:
        return _worker_view(self._engine(name, role="worker"))

    def client(self) -> docker.DockerClient:
        """A client for the manager (shared; closed by ``stop()``)."""
        with self._lock:
            if self._client is None:
                self._client = docker.DockerClient(
                    base_url=self.manager_host, version=API_VERSION, timeout=30
                )
            return self._client

    def join_info(self) -> JoinInfo:
        return JoinInfo(token=self._join_token, manager_addr=self.manager_addr)

    def wait_nodes_ready(self, hostnames: Iterable[str], timeout: float = 30.0) -> None:
        """Wait until every named node is ``ready`` on the manager; records their node ids."""
        wanted = set(hostnames)
        deadline = time.monotonic() + max(timeout, 0.0)
        api = self.client().api
        seen: dict[str, str] = {}
        while True:
            ready = {}
            for node in api.nodes():
                # a node that has just joined has no description yet
                hostname = node.get("Description", {}).get("Hostname")
                if hostname is None:
                    continue
                seen[hostname] = node["Status"]["State"]
                if node["Status"]["State"] == "ready":
                    ready[hostname] = node["ID"]
            if wanted <= ready.keys():
                with self._lock:
                    for name in wanted:
                        if name in self._record.engines:
                            self._record.engines[name].node_id = ready[name]
                    self._save()
                return
            if time.monotonic() > deadline:
                missing = {n: seen.get(n, "absent") for n in sorted(wanted - ready.keys())}
                raise LabError(f"nodes not ready in time: {missing}")
            time.sleep(0.1)

    def run_on(
        self, name: str, script: str, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside an engine's namespaces, DOCKER_HOST set to that engine."""
        rec = self._engine(name)
        cmd = ["nsenter", f"--net={netns.netns_path(rec.netns)}"]
        if rec.pid and teardown.is_alive(rec.pid):
            cmd.append(f"--uts=/proc/{rec.pid}/ns/uts")
        full_env = {**dockerd.engine_env(), "DOCKER_HOST": rec.host, **(env or {})}
        return subprocess.run(
            [*cmd, "sh", "-c", script],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def add_worker(
        self, name: str | None = None, join: Join = True, timeout: float = 60.0
    ) -> WorkerEngine:
        """Boot one more worker in a namespace of its own and (by default) join it."""
        deadline = time.monotonic() + timeout
        rec = self._new_worker_record(name)
        try:
            self._boot_engine(rec, deadline)
            if join is True:
                self._join_api(rec)
            elif isinstance(join, str):
                self._join_script(rec, join, deadline)
            elif callable(join):
                join(_worker_view(rec), self.join_info())
            if join is not False:
                self.wait_nodes_ready([rec.name], deadline - time.monotonic())
            _check_time(deadline, f"worker {rec.name}")
        except BaseException as exc:
            try:
                self._teardown_engine(rec)
                if join is not False:  # it may have joined: its node would stay, down
                    self._forget_node(rec.name)
            except (LabError, *CONNECT_ERRORS) as teardown_exc:
                exc.add_note(f"and removing the new worker failed: {teardown_exc}")
            raise
        return _worker_view(rec)

    def _forget_node(self, hostname: str) -> None:
        api = self.client().api
        for node in api.nodes():
            if node.get("Description", {}).get("Hostname") == hostname:
                with contextlib.suppress(docker.errors.NotFound):
                    api.remove_node(node["ID"], force=True)

    def _join_script(self, rec: EngineRecord, script: str, deadline: float) -> None:
        env = {
            "SWARM_JOIN_TOKEN": self._join_token,
            "SWARM_MANAGER": self.manager_addr,
            "WORKER_IP": rec.ip,
            "WORKER_NAME": rec.name,
        }
        done = self.run_on(rec.name, script, env, timeout=max(deadline - time.monotonic(), 1.0))
        if done.returncode != 0:
            raise LabError(
                f"join script on {rec.name} exited with {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )

    def remove_worker(self, name: str) -> None:
        """Leave the swarm, stop the engine, delete its namespace, then ``node rm --force``."""
        rec = self._engine(name, role="worker")
        api = docker.APIClient(base_url=rec.host, version=API_VERSION, timeout=15)
        try:
            api.leave_swarm(force=True)
        except CONNECT_ERRORS as exc:
            log.info("worker %s could not leave the swarm cleanly: %s", name, exc)
        finally:
            api.close()
        node_id = rec.node_id
        self._teardown_engine(rec)
        if node_id:
            with contextlib.suppress(docker.errors.NotFound):
                self.client().api.remove_node(node_id, force=True)

    def _engine(self, name: str, role: str | None = None) -> EngineRecord:
        with self._lock:
            rec = self._record.engines.get(name)
        if rec is None or (role and rec.role != role):
            raise LabError(f"no {role or 'engine'} named {name!r} in this lab")
        return rec

    def _teardown_engine(self, rec: EngineRecord) -> None:
        problems = stop_engines([rec], STOP_GRACE)
        self._reap([rec.name])
        problems += remove_engine_leftovers(Path(rec.dir), [rec])
        with self._lock:
            self._record.engines.pop(rec.name, None)
            self._save()
        if problems:
            raise LabError(f"tearing down {rec.name} left: {'; '.join(problems)}")

    def _reap(self, names: Iterable[str]) -> None:
        for name in names:
            proc = self._procs.pop(name, None)
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every engine and remove namespaces, veths, bridge, mounts and the folder.

        Safe to call twice; raises LabError only when something could not be removed.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._cancel.set()
            client, self._client = self._client, None
        if client is not None:
            client.close()
        engines = list(self._record.engines.values())
        problems = stop_engines(engines, STOP_GRACE)
        self._reap(list(self._procs))
        problems += remove_lab(self.root_dir, self._record)
        if problems:
            raise LabError("lab teardown incomplete: " + "; ".join(problems))

    def __enter__(self) -> SwarmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _save(self) -> None:
        with self._lock:
            save_record(self.root_dir, self._record)


def _worker_view(rec: EngineRecord) -> WorkerEngine:
    return WorkerEngine(
        name=rec.name,
        ip=rec.ip,
        socket=rec.socket,
        pid=rec.pid or 0,
        netns=rec.netns,
        veth=rec.veth,
        node_id=rec.node_id,
    )


def _check_time(deadline: float, what: str) -> None:
    """A step's waits test the deadline only while they still wait, so a step whose every
    wait was already over at first look could finish late without a word."""
    if time.monotonic() > deadline:
        raise LabError(f"{what} was not up in time")
