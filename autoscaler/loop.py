"""The reconcile pass, and the scheduler and event triggers that run it.

One pass: reload rules -> collect a Snapshot -> plan (pure) -> actuate -> metrics,
ledger. Passes never overlap; triggers that arrive during a pass are coalesced into
exactly one more pass after it. Event triggers are batched and spaced (EventBatching), and
while passes fail they wait for the scheduled pass, which backs off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from autoscaler.actuate.base import ActionResult, Actuator
from autoscaler.decide import plan as make_plan
from autoscaler.decide.memory import forget_undone
from autoscaler.decide.plan_types import (
    Action,
    Memory,
    Plan,
    RemoveNode,
    ScaleService,
    TerminateInstance,
)
from autoscaler.event_batching import EventBatching, event_pass_due
from autoscaler.ledger import Ledger
from autoscaler.metrics import SidecarMetrics
from autoscaler.rules.reload import ReloadOutcome, RulesStore
from autoscaler.snapshot import Snapshot
from autoscaler.sources.collect import Backends, collect

if TYPE_CHECKING:
    from autoscaler.alerts.manager import Alerting

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassResult:
    trigger: str
    ok: bool
    seconds: float
    snapshot: Snapshot | None = None
    plan: Plan | None = None
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    ledger_error: str | None = None
    """Why this pass's ledger line could not be written (AutoscalerLedgerNotWritten)."""


class Reconciler:
    """Runs passes one at a time and keeps the little state decide needs between them."""

    def __init__(
        self,
        *,
        rules: RulesStore,
        backends: Backends,
        actuator: Actuator,
        metrics: SidecarMetrics,
        ledger: Ledger | None = None,
        dry_run: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        alerting: Alerting | None = None,
    ) -> None:
        self.rules = rules
        self.backends = backends
        self.actuator = actuator
        self.metrics = metrics
        self.ledger = ledger
        self.dry_run = dry_run
        self.clock = clock
        self.alerting = alerting
        self.memory = Memory()
        self.last: PassResult | None = None
        self.last_planned: PassResult | None = None
        self.last_success_at: datetime | None = None
        self._created_mono = time.monotonic()
        self._last_success_mono: float | None = None
        self.stopping = threading.Event()
        """Set on SIGTERM: the pass in progress starts no further action (Swarm kills the
        task after its stop_grace_period, 10 s by default) and records the rest as skipped."""
        self._lock = threading.Lock()

    def run_pass(self, trigger: str = "manual") -> PassResult:
        with self._lock:
            t0 = time.monotonic()
            try:
                result = self._pass(trigger, t0)
            except Exception as e:  # a bug must not kill the loop; it is logged and counted
                log.exception("pass failed")
                result = PassResult(trigger, False, time.monotonic() - t0, error=repr(e))
            self.metrics.passes.labels("ok" if result.ok else "error").inc()
            self.metrics.pass_duration.observe(result.seconds)
            if result.ok:
                self.last_success_at = self.clock()
                self._last_success_mono = time.monotonic()
                self.metrics.last_success.set(self.last_success_at.timestamp())
            self.last = result
            if result.plan is not None:  # /plan keeps the last plan made, not a failed pass
                self.last_planned = result
            if self.alerting is not None:
                try:
                    self.alerting.after_pass(result, self.rules)
                except Exception:  # alerting must never break a pass
                    log.exception("alert evaluation failed")
            return result

    def _pass(self, trigger: str, t0: float) -> PassResult:
        outcome = self.rules.refresh()
        if outcome in (ReloadOutcome.LOADED, ReloadOutcome.INVALID):  # not CHANGING: no reload
            self.metrics.rules_reloads.labels(
                "error" if outcome == ReloadOutcome.INVALID else "ok"
            ).inc()
        self.metrics.rules_valid.set(0 if self.rules.problems else 1)
        policies = self.rules.policies

        snapshot = collect(self.backends, policies.signals, now=self.clock)
        if self.alerting is not None:  # without it no alert is delivered, no session ended
            delivered = self.alerting.notices_delivered()
            snapshot = snapshot.model_copy(update={"notices_delivered": delivered})
        self.metrics.observe_snapshot(snapshot, policies.signals)
        plan = make_plan(snapshot, policies, self.memory).model_copy(
            update={"snapshot_digest": snapshot.digest()}
        )
        self.memory = plan.memory
        self.metrics.observe_plan(plan, {n: p.service or n for n, p in policies.services.items()})
        results = self._execute_all(plan.actions)
        undone = [
            r.action
            for r in results
            if isinstance(r.action, ScaleService) and (r.dry_run or not r.ok)
        ]
        if undone:
            self.memory = forget_undone(self.memory, plan.at, undone)
        self.metrics.observe_results(results)
        ledger_error = None
        if self.ledger is not None:
            written = self.ledger.record(
                trigger=trigger,
                snapshot=snapshot,
                plan=plan,
                results=results,
                rules_generation=self.rules.generation,
                dry_run=self.dry_run,
            )
            self.metrics.ledger_lines.labels("written" if written else "failed").inc()
            ledger_error = None if written else self.ledger.error or "not written"
        for r in results:
            level = logging.INFO if r.ok or r.skipped else logging.WARNING
            log.log(level, "%s: %s", r.action.kind, r.message)
        swarm = snapshot.sources.get("swarm")
        error = None if snapshot.swarm is not None else f"swarm: {swarm.error if swarm else '?'}"
        return PassResult(
            trigger,
            error is None,
            time.monotonic() - t0,
            snapshot,
            plan,
            results,
            error,
            ledger_error=ledger_error,
        )

    def _execute_all(self, actions: tuple[Action, ...]) -> list[ActionResult]:
        """In order; a machine whose node was not removed from the Swarm is not terminated."""
        results: list[ActionResult] = []
        not_removed: set[str] = set()
        for a in actions:
            if self.stopping.is_set():
                why = "not attempted: the sidecar is stopping"
                results.append(ActionResult(action=a, ok=False, message=why, skipped=True))
                continue
            if isinstance(a, TerminateInstance) and a.after_removal_of in not_removed:
                why = "not terminated: its node was not removed from the Swarm in this pass"
                results.append(ActionResult(action=a, ok=False, message=why, skipped=True))
                continue
            result = self._execute(a)
            if isinstance(a, RemoveNode) and not result.ok:
                not_removed.add(a.node_id)
            results.append(result)
        return results

    def _execute(self, action: Action) -> ActionResult:
        try:
            return self.actuator.execute(action)
        except Exception as e:  # an actuator must report, not raise; guard anyway
            log.exception("actuator raised")
            return ActionResult(action=action, ok=False, message=f"error: {e!r}")

    def healthy(self, window: timedelta, started_at: datetime) -> bool:
        """True while a pass succeeded within ``window`` (or we started less than it ago)."""
        ref = self.last_success_at or started_at
        # The older of the wall clock's and the monotonic clock's reading: a wall clock set
        # back an hour would otherwise keep failing passes "healthy" for that hour.
        mono_ref = (
            self._created_mono if self._last_success_mono is None else self._last_success_mono
        )
        since = max(self.clock() - ref, timedelta(seconds=time.monotonic() - mono_ref))
        return since <= window


class Runner:
    """APScheduler interval passes plus batched, coalesced passes on events."""

    def __init__(
        self,
        reconciler: Reconciler,
        interval: timedelta,
        max_backoff: timedelta,
        batching: EventBatching | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reconciler = reconciler
        self.interval = interval
        self.max_backoff = max_backoff
        self.batching = batching or EventBatching()
        self._monotonic = monotonic
        self.failures = 0
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._first_event: float | None = None
        self._last_event: float | None = None
        """When the first and the last event ask not taken by a pass yet came."""
        self._ended: float | None = None
        """When the last pass ended."""
        self._running = False
        """A pass is running: the event asks that come meanwhile are arranged at its end,
        when the gap after it is known."""
        self._asked = False
        """An events drain job is added and has not taken the pending asks yet: later asks
        join it (it looks again when it fires). A job added per ask would, past
        ``max_instances`` drains waiting behind a long pass, make APScheduler log a warning
        for each (events during a rolling update)."""
        self._now_asked = False
        """A "now" drain job is added and no drain has taken the asks since: later
        ``always`` asks join it. A job per webhook would, past ``max_instances`` drains
        waiting behind a long pass, be skipped with a warning each (alerts firing at once).
        At most two "now" drains are then ever in flight, so none is skipped."""
        self._drain_lock = threading.Lock()
        self._scheduling = threading.Lock()
        """Held to change jobs, and by stop() to set the reconciler's ``stopping``:
        APScheduler's shutdown holds its job-store lock while it waits for running jobs, so
        a job (a pass ending its failure streak, the interval job) that changed jobs then
        would wait for ever."""
        self.scheduler = _ClockSafeScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(4)}
        )
        self.passes_done = threading.Event()

    def start(self) -> None:
        self.scheduler.add_job(
            self._ask,
            IntervalTrigger(seconds=self.interval.total_seconds()),
            args=["schedule", True],
            id="interval",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.start()

    def trigger(self, reason: str) -> None:
        """Ask for a pass once events are quiet (``batching``); many asks make one pass."""
        self._ask(reason)

    def trigger_now(self, reason: str) -> None:
        """Ask for a pass at once, whatever the batching: an Alertmanager webhook, which
        Alertmanager has grouped and spaced already, and which is sent to be acted on."""
        self._ask(reason, always=True)

    def _ask(self, reason: str, always: bool = False) -> None:
        """``always`` (the scheduled asks and ``trigger_now``) adds a drain job at once even
        when an events one is asked for: that one may wait for the batch, or be left to the
        scheduled pass. The pass it starts takes the pending event asks too."""
        with self._scheduling:
            if self.reconciler.stopping.is_set():
                return
            now = self._monotonic()
            with self._pending_lock:
                self._pending.append(reason)
                if not always:
                    self._first_event = now if self._first_event is None else self._first_event
                    self._last_event = now
                now_job = always and self.scheduler.running and not self._now_asked
                self._now_asked = self._now_asked or now_job
            if now_job:
                self.scheduler.add_job(
                    self._drain,
                    "date",
                    id="now",
                    replace_existing=True,
                    max_instances=3,
                    misfire_grace_time=None,
                )
        if not always:
            self._arrange_events()

    def _arrange_events(self, fired: bool = False) -> bool:
        """Adds the events drain job for when the pending event asks are due, unless one is
        added, a pass runs (its end arranges them) or passes are failing: the scheduled
        pass, backed off, takes them then, as an event must not bring it forward. ``fired``:
        called by that job, which learns whether they are due now."""
        with self._scheduling:
            if self.reconciler.stopping.is_set() or not self.scheduler.running:
                return False
            now = self._monotonic()
            with self._pending_lock:
                if not fired and (self._asked or self._running):
                    return False
                if self.failures or self._first_event is None or self._last_event is None:
                    self._asked = False
                    return False
                due = event_pass_due(
                    self._first_event, self._last_event, self._ended, self.batching
                )
                self._asked = True
                if fired and due <= now:
                    return True
            # A scheduled pass comes within this and takes the asks: no date overflows.
            horizon = max(self.interval, self.max_backoff).total_seconds()
            wait = timedelta(seconds=min(max(due - now, 0.0), horizon))
            self.scheduler.add_job(
                self._drain,
                "date",
                run_date=datetime.now(UTC) + wait,
                args=[True],
                id="events",
                replace_existing=True,
                max_instances=3,
                misfire_grace_time=None,
            )
            return False

    def _drain(self, events: bool = False) -> None:
        with self._drain_lock:
            if self.reconciler.stopping.is_set():  # queued behind the pass a stop let finish
                return
            if events and not self._arrange_events(fired=True):
                return  # not due yet (added again), or left to the scheduled pass
            with self._pending_lock:
                reasons, self._pending = self._pending, []
                self._first_event = self._last_event = None
                self._asked = self._now_asked = False
                self._running = bool(reasons)
            if not reasons:
                return  # an earlier drain already ran a pass that started after these asks
            try:
                result = self.reconciler.run_pass(",".join(dict.fromkeys(reasons)))
                self._adjust_backoff(result.ok)
            finally:
                with self._pending_lock:
                    self._running = False
                    self._ended = self._monotonic()
            self._arrange_events()  # the event asks that came during the pass
            self.passes_done.set()

    def _adjust_backoff(self, ok: bool) -> None:
        before = self.failures
        self.failures = 0 if ok else self.failures + 1
        if before == self.failures:
            return
        delay = backoff_delay(self.interval, self.max_backoff, self.failures)
        if self.failures:
            log.warning("pass failed %d time(s) in a row; next in %s", self.failures, delay)
        with self._scheduling:
            if self.reconciler.stopping.is_set():
                return
            self.scheduler.reschedule_job(
                "interval", trigger=IntervalTrigger(seconds=delay.total_seconds())
            )

    def stop(self) -> None:
        """Let the pass in progress finish its current action and its ledger line; start
        nothing else."""
        with self._scheduling:
            self.reconciler.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)


CLOCK_CHECK = 5.0
"""Seconds between looks at the wall clock (the scheduler's loop wakes at least this often)."""

CLOCK_JUMP = 2.0
"""Seconds the wall clock may drift from the monotonic one before it counts as a jump."""


def _wall() -> float:
    return datetime.now(UTC).timestamp()


class _ClockSafeScheduler(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler plans in wall-clock time. Set back an hour (NTP stepping a clock that ran
    fast, a VM restored from a snapshot), it would wait an hour for the next scheduled pass,
    and /healthz, also on the wall clock, would not notice. This one compares the wall clock
    with the monotonic one on every wake-up and, after a jump, runs its jobs from now."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._offset = _wall() - time.monotonic()

    def _process_jobs(self) -> float:
        # against the last look, not the first: NTP's slewing adds up over days
        offset = _wall() - time.monotonic()
        jump, self._offset = offset - self._offset, offset
        if abs(jump) > CLOCK_JUMP:
            log.warning("the wall clock jumped by %+.0fs; scheduling from now", jump)
            now = datetime.now(UTC)
            for job in self.get_jobs():
                if job.next_run_time is not None and job.next_run_time > now:
                    job.modify(next_run_time=now)
        wait = super()._process_jobs()
        return CLOCK_CHECK if wait is None else min(float(wait), CLOCK_CHECK)


def backoff_delay(interval: timedelta, cap: timedelta, failures: int) -> timedelta:
    """Interval doubled per consecutive failure, capped (never unbounded)."""
    if failures <= 0:
        return interval
    # in float seconds: a timedelta of a long interval times 2**30 would overflow
    doubled = interval.total_seconds() * 2.0 ** min(failures, 30)
    return timedelta(seconds=min(doubled, max(cap, interval).total_seconds()))
