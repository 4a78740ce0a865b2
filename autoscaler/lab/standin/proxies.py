"""Session lifecycle as ShinyProxy 3.2 runs it on Swarm, with its metrics and usage events.

Start: a service ``sp-service-<proxyId>-0`` is created and its task must be running within
``service_wait_time``, else the service is removed and the start fails (no queue). Stop: the
service is removed. A running session whose task ends, whose service vanishes or whose node
is lost counts as crashed (``appCrashes``), and its service is removed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NoReturn, Protocol

from autoscaler.lab.sessions import session_labels
from autoscaler.lab.standin.meters import MeterRegistry
from autoscaler.lab.standin.specs import AppSpec
from autoscaler.lab.standin.swarm import LABEL, SessionBackend, SessionServiceRequest, SwarmView

log = logging.getLogger(__name__)

APP_INFO = {"New": 1.0, "Up": 10.0, "Stopping": 40.0, "Stopped": 40.0}
APP_INFO_CRASHED = 50.0
APP_INFO_FAILED = 100.0
RECENT_SECONDS = 120.0
"""How long a stopped proxy's appInfo series stays visible (ShinyProxy's 2-minute cache)."""
ACTIVE_USER_SECONDS = 60.0


class Status(StrEnum):
    NEW = "New"
    UP = "Up"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class StopReason(StrEnum):
    USER = "Stopped"
    CRASHED = "Crashed"
    HEARTBEAT = "HeartbeatTimeout"
    LIFETIME = "MaxLifetime"
    LOGOUT = "Logout"


class UsageSink(Protocol):
    def submit(self, username: str, event_type: str, data: str | None) -> None: ...


class StartFailed(Exception):
    """The proxy did not start; the user sees this message."""


class LimitReached(Exception):
    """A max-instances limit refuses the start."""


@dataclass
class Proxy:
    id: str
    spec: AppSpec
    user_id: str
    user_groups: tuple[str, ...]
    created_ms: int
    status: Status = Status.NEW
    startup_ms: int = 0
    service_id: str = ""
    service_name: str = ""
    container_id: str = ""
    node_id: str = ""
    last_heartbeat: float = 0.0
    up_since_mono: float = 0.0

    def to_api(self) -> dict[str, object]:
        """The fields of ShinyProxy's /api/proxy answer."""
        return {
            "id": self.id,
            "status": self.status.value,
            "createdTimestamp": self.created_ms,
            "startupTimestamp": self.startup_ms,
            "userId": self.user_id,
            "specId": self.spec.id,
            "displayName": self.spec.name,
            "containers": [{"index": 0, "id": self.container_id, "runtimeValues": {}}],
            "runtimeValues": {"SHINYPROXY_APP_INSTANCE": "_"},
        }


@dataclass(frozen=True)
class Settings:
    instance_id: str
    realm_id: str = ""
    service_wait_time: float = 60.0
    poll_interval: float = 0.5
    heartbeat_timeout: float = -1.0
    """Seconds without a heartbeat before a proxy is stopped; -1 disables."""
    max_total_instances: int = -1
    public_path_prefix: str = "/app_proxy/"


@dataclass
class _Users:
    logged_in: set[str] = field(default_factory=set)
    last_seen: dict[str, float] = field(default_factory=dict)


class ProxyService:
    def __init__(
        self,
        specs: tuple[AppSpec, ...],
        backend: SessionBackend,
        meters: MeterRegistry,
        usage: UsageSink | None,
        settings: Settings,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.specs = {s.id: s for s in specs}
        self._backend = backend
        self._meters = meters
        self._usage = usage
        self.settings = settings
        self._wall, self._mono, self._sleep = wall, mono, sleep
        self._lock = threading.RLock()
        self._proxies: dict[str, Proxy] = {}
        self._users = _Users()
        self._apps_running: dict[str, int] = {}
        self._app_info: dict[str, tuple[dict[str, str], float]] = {}
        self._recent: dict[str, float] = {}
        self._register_meters()

    # -- meters ---------------------------------------------------------------------------

    def _register_meters(self) -> None:
        m = self._meters
        for name in ("userLogins", "userLogouts", "authFailed"):
            m.register_counter(name)
        m.gauge("absolute_users_logged_in", None, self._count_logged_in)
        m.gauge("absolute_users_active", None, self._count_active)
        for spec_id in self.specs:
            self._register_spec(spec_id)

    def _register_spec(self, spec_id: str) -> None:
        m, tags = self._meters, {"spec.id": spec_id}
        for name in ("appStarts", "appStops", "appCrashes", "startFailed"):
            m.register_counter(name, tags)
        m.gauge("absolute_apps_running", tags, lambda: self._running_cached(spec_id))
        for name in ("startupTime", "applicationStartupTime", "usageTime"):
            m.register_timer(name, tags)
        for name in ("imagePullTime", "containerScheduleTime", "containerStartupTime"):
            m.register_timer(name, {**tags, "container.idx": "0"})

    def _running_cached(self, spec_id: str) -> float:
        # NaN until a refresh has seen this spec with a proxy Up, as in ShinyProxy.
        value = self._apps_running.get(spec_id)
        return math.nan if value is None else float(value)

    def _count_logged_in(self) -> float:
        with self._lock:
            return float(len(self._users.logged_in))

    def _count_active(self) -> float:
        now = self._mono()
        with self._lock:
            return float(
                sum(1 for t in self._users.last_seen.values() if now - t <= ACTIVE_USER_SECONDS)
            )

    def _set_app_info(self, proxy: Proxy, value: float) -> None:
        labels = {
            "spec.id": proxy.spec.id,
            "user.id": proxy.user_id,
            "proxy.instance": "_",
            "proxy.id": proxy.id,
            "proxy.created.timestamp": str(proxy.created_ms),
            "resource.id": proxy.service_id or "NA",
            "proxy.namespace": "default" if proxy.service_id else "NA",
        }
        old = self._app_info.pop(proxy.id, None)
        if old is not None:
            self._meters.remove_gauge("appInfo", old[0])
        self._app_info[proxy.id] = (labels, value)
        self._meters.gauge("appInfo", labels, value)

    def _emit(self, user: str, event_type: str, data: str | None) -> None:
        if self._usage is not None:
            self._usage.submit(user, event_type, data)

    # -- users ----------------------------------------------------------------------------

    def touch(self, user: str) -> None:
        """A request by ``user``: log them in on their first one."""
        with self._lock:
            self._users.last_seen[user] = self._mono()
            if user in self._users.logged_in:
                return
            self._users.logged_in.add(user)
        self._meters.increment("userLogins")
        self._emit(user, "Login", None)

    def logout(self, user: str) -> None:
        with self._lock:
            if user not in self._users.logged_in:
                return
            self._users.logged_in.discard(user)
            self._users.last_seen.pop(user, None)
            mine = [p.id for p in self._proxies.values() if p.user_id == user]
        for pid in mine:
            self.stop(pid, StopReason.LOGOUT)
        self._meters.increment("userLogouts")
        self._emit(user, "Logout", None)

    # -- queries --------------------------------------------------------------------------

    def proxies(self, user: str | None = None) -> list[Proxy]:
        with self._lock:
            return [p for p in self._proxies.values() if user is None or p.user_id == user]

    def get(self, proxy_id: str) -> Proxy | None:
        with self._lock:
            return self._proxies.get(proxy_id)

    def heartbeat(self, proxy_id: str) -> bool:
        with self._lock:
            p = self._proxies.get(proxy_id)
            if p is None:
                return False
            p.last_heartbeat = self._mono()
            return True

    # -- start ----------------------------------------------------------------------------

    def _check_limits(self, spec: AppSpec, user: str) -> None:
        live = [p for p in self._proxies.values() if p.status in (Status.NEW, Status.UP)]
        if spec.max_instances >= 0:
            mine = sum(1 for p in live if p.user_id == user and p.spec.id == spec.id)
            if mine >= spec.max_instances:
                raise LimitReached(
                    "Cannot start new proxy because the maximum amount of instances of this "
                    "proxy has been reached"
                )
        total = self.settings.max_total_instances
        of_spec = sum(1 for p in live if p.spec.id == spec.id)
        if spec.max_total_instances >= 0 and of_spec >= spec.max_total_instances:
            raise LimitReached(
                "Cannot start new proxy: the maximum instances of this app are running"
            )
        if total >= 0 and len(live) >= total:
            raise LimitReached("Cannot start new proxy: the maximum total instances are running")

    def _request(self, proxy: Proxy) -> SessionServiceRequest:
        s, spec = self.settings, proxy.spec
        heartbeat_ms = (
            spec.heartbeat_timeout_ms
            if spec.heartbeat_timeout_ms is not None
            else int(s.heartbeat_timeout * 1000)
            if s.heartbeat_timeout > 0
            else -1
        )
        public_path = f"{s.public_path_prefix}{proxy.id}/"
        labels = session_labels(
            proxy_id=proxy.id,
            spec_id=spec.id,
            user_id=proxy.user_id,
            instance=s.instance_id,
            created_at=datetime.fromtimestamp(proxy.created_ms / 1000, UTC),
            user_groups=proxy.user_groups,
            realm_id=s.realm_id or None,
            heartbeat_timeout_ms=heartbeat_ms,
            max_lifetime_minutes=spec.max_lifetime_minutes,
        )
        # exact to the millisecond (the datetime round trip can lose one)
        labels[f"{LABEL}sp-proxy-created-timestamp"] = str(proxy.created_ms)
        labels[f"{LABEL}sp-app-instance"] = "_"
        labels[f"{LABEL}sp-public-path"] = public_path
        env = {
            "SHINYPROXY_USERNAME": proxy.user_id,
            "SHINYPROXY_USERGROUPS": ",".join(proxy.user_groups),
            "SHINYPROXY_PUBLIC_PATH": public_path,
            "SHINYPROXY_APP_INSTANCE": "_",
            "SHINYPROXY_PROXY_ID": proxy.id,
        }

        def nano(cpus: float | None) -> int | None:
            return None if cpus is None else int(cpus * 1e9)

        return SessionServiceRequest(
            name=proxy.service_name,
            image=spec.container_image,
            command=spec.container_cmd,
            labels=labels,
            env=env,
            nano_cpus_reservation=nano(spec.cpu_request),
            memory_reservation=spec.memory_request,
            nano_cpus_limit=nano(spec.cpu_limit),
            memory_limit=spec.memory_limit,
        )

    def start(self, spec_id: str, user: str, groups: tuple[str, ...] = ()) -> Proxy:
        """Start a proxy and wait for it to be Up; raise StartFailed after the wait time."""
        spec = self.specs.get(spec_id)
        if spec is None:
            raise KeyError(spec_id)
        self.touch(user)
        with self._lock:
            self._check_limits(spec, user)
            pid = str(uuid.uuid4())
            proxy = Proxy(pid, spec, user, groups, created_ms=int(self._wall() * 1000))
            proxy.service_name = f"sp-service-{pid}-0"
            proxy.last_heartbeat = self._mono()
            self._proxies[pid] = proxy
            self._set_app_info(proxy, APP_INFO["New"])
        t0 = self._mono()
        try:
            proxy.service_id = self._backend.create(self._request(proxy))
        except Exception as e:
            self._start_failed(proxy, f"Container failed to start: {e}")
        scheduled_at = self._wait_running(proxy, t0)
        up = self._mono()
        with self._lock:
            if proxy.status != Status.NEW:
                # stopped while starting: the stop already accounted for it
                raise StartFailed("Proxy was stopped while starting")
            proxy.status = Status.UP
            proxy.startup_ms = int(self._wall() * 1000)
            proxy.up_since_mono = up
            proxy.last_heartbeat = up
            self._set_app_info(proxy, APP_INFO["Up"])
        tags = {"spec.id": spec.id}
        ctags = {**tags, "container.idx": "0"}
        self._meters.increment("appStarts", tags)
        self._meters.record("startupTime", tags, up - t0)
        self._meters.record("containerScheduleTime", ctags, scheduled_at - t0)
        self._meters.record("containerStartupTime", ctags, up - scheduled_at)
        self._meters.record("applicationStartupTime", tags, 0.0)
        self._emit(user, "ProxyStart", spec.id)
        return proxy

    def _wait_running(self, proxy: Proxy, t0: float) -> float:
        """Poll the task until running; returns when it left pending. Fails at the deadline."""
        deadline = t0 + self.settings.service_wait_time
        scheduled_at: float | None = None
        last = ""
        while True:
            if proxy.status != Status.NEW:
                raise StartFailed("Proxy was stopped while starting")
            try:
                task = self._backend.task(proxy.service_id)
            except Exception as e:
                task, last = None, f"cannot inspect service tasks: {e}"
            if task is not None:
                last = task.error or task.message or task.state
                if scheduled_at is None and task.left_pending:
                    scheduled_at = self._mono()
                if task.is_running:
                    proxy.container_id = task.container_id
                    proxy.node_id = task.node_id
                    return scheduled_at if scheduled_at is not None else self._mono()
                if task.has_ended:
                    self._start_failed(proxy, f"Container failed to start: {last}")
            if self._mono() >= deadline:
                self._start_failed(proxy, f"Container did not start in time ({last or 'no task'})")
            self._sleep(self.settings.poll_interval)

    def _start_failed(self, proxy: Proxy, message: str) -> NoReturn:
        if proxy.service_id:
            try:
                self._backend.remove(proxy.service_id)
            except Exception as e:
                log.warning("cannot remove service of failed proxy %s: %s", proxy.id, e)
        with self._lock:
            self._proxies.pop(proxy.id, None)
            proxy.status = Status.STOPPED
            self._set_app_info(proxy, APP_INFO_FAILED)
            self._recent[proxy.id] = self._mono()
        self._meters.increment("startFailed", {"spec.id": proxy.spec.id})
        log.info("proxy %s of %s failed to start: %s", proxy.id, proxy.user_id, message)
        raise StartFailed(message)

    # -- stop -----------------------------------------------------------------------------

    def stop(self, proxy_id: str, reason: StopReason = StopReason.USER) -> bool:
        with self._lock:
            proxy = self._proxies.get(proxy_id)
            if proxy is None or proxy.status in (Status.STOPPING, Status.STOPPED):
                return False
            was_up = proxy.status == Status.UP
            proxy.status = Status.STOPPING
            self._set_app_info(proxy, APP_INFO["Stopping"])
        if proxy.service_id:
            try:
                self._backend.remove(proxy.service_id)
            except Exception as e:
                log.warning("cannot remove service %s: %s", proxy.service_name, e)
        crashed = reason == StopReason.CRASHED
        with self._lock:
            self._proxies.pop(proxy_id, None)
            proxy.status = Status.STOPPED
            self._set_app_info(proxy, APP_INFO_CRASHED if crashed else APP_INFO["Stopped"])
            self._recent[proxy.id] = self._mono()
        tags = {"spec.id": proxy.spec.id}
        self._meters.increment("appStops", tags)
        if was_up:
            self._meters.record("usageTime", tags, self._mono() - proxy.up_since_mono)
        if crashed:
            self._meters.increment("appCrashes", tags)
        self._emit(proxy.user_id, "ProxyStop", proxy.spec.id)
        log.info("proxy %s of %s stopped: %s", proxy.id, proxy.user_id, reason.value)
        return True

    # -- background -----------------------------------------------------------------------

    def reconcile(self) -> list[str]:
        """Find sessions the Swarm ended (drain, lost node, removed service): crash them."""
        seen_at = self._mono()
        view = self._backend.observe()
        with self._lock:
            up = [
                p
                for p in self._proxies.values()
                if p.status == Status.UP and p.up_since_mono < seen_at
            ]
        crashed = [p.id for p in up if _is_gone(p, view)]
        for pid in crashed:
            self.stop(pid, StopReason.CRASHED)
        self._expire(seen_at)
        return crashed

    def _expire(self, now: float) -> None:
        timeout = self.settings.heartbeat_timeout
        with self._lock:
            up = [p for p in self._proxies.values() if p.status == Status.UP]
        for p in up:
            own = p.spec.heartbeat_timeout_ms
            limit = own / 1000 if own is not None else timeout
            if limit > 0 and now - p.last_heartbeat > limit:
                self.stop(p.id, StopReason.HEARTBEAT)
            elif p.spec.max_lifetime_minutes > 0 and (
                now - p.up_since_mono > p.spec.max_lifetime_minutes * 60
            ):
                self.stop(p.id, StopReason.LIFETIME)

    def refresh(self) -> None:
        """ShinyProxy's 20-second cache: apps running per spec, and expiry of appInfo series."""
        now = self._mono()
        with self._lock:
            counts = dict.fromkeys(self._apps_running, 0)
            for p in self._proxies.values():
                if p.status == Status.UP:
                    counts[p.spec.id] = counts.get(p.spec.id, 0) + 1
            self._apps_running.update(counts)
            for pid, at in list(self._recent.items()):
                if now - at > RECENT_SECONDS:
                    del self._recent[pid]
                    info = self._app_info.pop(pid, None)
                    if info is not None:
                        self._meters.remove_gauge("appInfo", info[0])


def _is_gone(proxy: Proxy, view: SwarmView) -> bool:
    task = view.tasks.get(proxy.service_id)
    if task is None:
        return True
    if not task.is_running or task.desired_state in ("shutdown", "remove"):
        return True
    return view.node_lost(task.node_id)
