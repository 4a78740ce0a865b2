"""Drive sessions against the stand-in like users would: log in, start, hold, stop, log out.

Each planned session runs in its own thread: its start blocks until ShinyProxy answers (Up,
or failed after the service wait time), then it sends heartbeats while it holds the seat. A
heartbeat answered 404 means the session is gone before its end: it was killed (a crash).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from autoscaler.lab.standin.server import USER_HEADER
from autoscaler.lab.trace import PlannedSession

HEARTBEAT_RATE = 10.0
"""ShinyProxy's proxy.heartbeat-rate: the browser pings every 10 s."""


@dataclass
class SessionOutcome:
    user: str
    planned_start: float
    outcome: str = "pending"
    """started-and-completed, failed, killed, cancelled."""
    wait_s: float | None = None
    """Time from asking for a session to having it (or to the failure)."""
    detail: str = ""


@dataclass
class LoadReport:
    planned: int
    outcomes: list[SessionOutcome] = field(default_factory=list)
    elapsed_s: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def started(self) -> int:
        return sum(1 for o in self.outcomes if o.outcome in ("completed", "killed", "cancelled"))

    def waits(self) -> list[float]:
        return sorted(
            o.wait_s for o in self.outcomes if o.wait_s is not None and o.outcome != "failed"
        )

    def summary(self) -> dict[str, Any]:
        waits = self.waits()

        def q(p: float) -> float | None:
            if not waits:
                return None
            return round(waits[min(len(waits) - 1, int(p * len(waits)))], 3)

        reasons: dict[str, int] = {}
        for o in self.outcomes:
            if o.outcome == "failed":
                reasons[o.detail] = reasons.get(o.detail, 0) + 1
        return {
            "planned": self.planned,
            "started": self.started,
            "failed": self.count("failed"),
            "killed": self.count("killed"),
            "completed": self.count("completed"),
            "cancelled": self.count("cancelled"),
            "wait_for_seat_s": {
                "p50": round(statistics.median(waits), 3) if waits else None,
                "p95": q(0.95),
                "max": round(waits[-1], 3) if waits else None,
            },
            "failure_reasons": reasons,
            "elapsed_s": round(self.elapsed_s, 1),
        }


class LoadDriver:
    def __init__(
        self,
        base_url: str,
        app: str,
        user_prefix: str | None = None,
        timeout: float = 300.0,
        heartbeat_rate: float = HEARTBEAT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.prefix = user_prefix or f"load-{uuid.uuid4().hex[:6]}"
        self.timeout = timeout
        self.heartbeat_rate = heartbeat_rate
        self._clock = clock
        self._stop = threading.Event()

    def cancel(self) -> None:
        """End the run: no new sessions, live ones are stopped at their next heartbeat."""
        self._stop.set()

    def _call(self, method: str, path: str, user: str) -> requests.Response:
        return requests.request(
            method, f"{self.base_url}{path}", headers={USER_HEADER: user}, timeout=self.timeout
        )

    def run(self, plan: Iterable[PlannedSession], speed: float = 1.0) -> LoadReport:
        """Replay ``plan`` (trace seconds) at ``speed`` times real time; wait for every session."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        sessions = list(plan)
        report = LoadReport(planned=len(sessions))
        threads: list[threading.Thread] = []
        lock = threading.Lock()
        t0 = self._clock()
        for i, s in enumerate(sessions):
            if self._stop.wait(max(0.0, t0 + s.start_s / speed - self._clock())):
                break
            out = SessionOutcome(f"{self.prefix}-{i:05d}", s.start_s / speed)
            with lock:
                report.outcomes.append(out)
            t = threading.Thread(target=self._session, args=(out, s.length_s / speed), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        report.elapsed_s = self._clock() - t0
        return report

    def _session(self, out: SessionOutcome, hold_s: float) -> None:
        try:
            self._session_body(out, hold_s)
        except requests.RequestException as e:
            if out.outcome == "pending":
                out.outcome, out.detail = "failed", f"stand-in unreachable: {type(e).__name__}"

    def _session_body(self, out: SessionOutcome, hold_s: float) -> None:
        user = out.user
        self._call("POST", "/login", user)
        asked = self._clock()
        r = self._call("POST", f"/api/proxy/{self.app}", user)
        out.wait_s = self._clock() - asked
        if r.status_code != 201:
            out.outcome = "failed"
            out.detail = _reason(r)
            self._call("POST", "/logout", user)
            return
        proxy_id = r.json()["data"]["id"]
        end = self._clock() + hold_s
        while True:
            left = end - self._clock()
            if left <= 0:
                out.outcome = "completed"
                break
            if self._stop.wait(min(self.heartbeat_rate, left)):
                out.outcome = "cancelled"
                break
            if self._call("POST", f"/heartbeat/{proxy_id}", user).status_code == 404:
                out.outcome = "killed"
                break
        if out.outcome != "killed":
            gone = self._call("DELETE", f"/api/proxy/{proxy_id}", user).status_code == 404
            if gone:
                out.outcome = "killed"
        self._call("POST", "/logout", user)


def _reason(r: requests.Response) -> str:
    try:
        data = r.json().get("data")
    except ValueError:
        data = r.text[:100]
    text = str(data)
    if "insufficient resources" in text or "no suitable node" in text:
        return "no node had room (start timed out)"
    if "did not start in time" in text:
        return "start timed out"
    return f"HTTP {r.status_code}: {text[:120]}"


def burst_plan(sessions: int, hold_s: float, ramp_s: float = 0.0) -> list[PlannedSession]:
    """``sessions`` sessions asked for within ``ramp_s`` seconds, each held ``hold_s``."""
    if sessions <= 0 or hold_s <= 0:
        raise ValueError("a burst needs a positive number of sessions and a positive duration")
    step = ramp_s / sessions if sessions else 0.0
    return [PlannedSession(i * step, hold_s) for i in range(sessions)]
