"""Schedule windows against a minute-by-minute reading of the wall clock, around DST changes.

The reference: a window opens at every instant at which the zone's clock reads a time the
cron names (twice in the hour that repeats when the clock is set back); a time the clock
skips when set forward opens it at the jump, as cron runs what falls in the gap. It is open
for ``duration`` of real time from each opening.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide import schedule as S
from autoscaler.rules.schema import Schedule

MINUTE = timedelta(minutes=1)

# (zone, an instant its clock changes in 2024)
CHANGES = [
    ("Europe/Brussels", datetime(2024, 3, 31, 1, 0, tzinfo=UTC)),
    ("Europe/Brussels", datetime(2024, 10, 27, 1, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2024, 3, 10, 7, 0, tzinfo=UTC)),
    ("America/New_York", datetime(2024, 11, 3, 6, 0, tzinfo=UTC)),
    ("Australia/Sydney", datetime(2024, 4, 6, 16, 0, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2024, 4, 6, 15, 0, tzinfo=UTC)),  # a 30-minute change
    ("Australia/Lord_Howe", datetime(2024, 10, 5, 15, 30, tzinfo=UTC)),
    ("UTC", datetime(2024, 5, 6, 0, 0, tzinfo=UTC)),
]
CRONS = ["0 * * * *", "*/15 * * * *", "30 2 * * *", "45 1 * * *", "0 3 * * *", "15 0-3 * * *",
         "0 2 * * 0", "59 23 * * *", "30 1,2 * * 6,0"]  # fmt: skip
DURATIONS = ["1m", "10m", "45m", "1h", "2h30m"]


def _reads(zone: ZoneInfo, at: datetime) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


def _opens_at(cron: str, zone: ZoneInfo, at: datetime) -> bool:
    """Whether a window opens at the whole minute ``at`` (UTC), by the reference."""
    now, before = _reads(zone, at), _reads(zone, at - MINUTE)
    if croniter.match(cron, now):
        return True
    skipped = before + MINUTE
    while skipped < now:  # the clock jumped over these minutes at ``at``
        if croniter.match(cron, skipped):
            return True
        skipped += MINUTE
    return False


def _open_by_reference(s: Schedule, now: datetime) -> bool:
    zone = ZoneInfo(s.timezone)
    minute = now.replace(second=0, microsecond=0)
    at = minute
    while at > now - s.duration:  # an opening in (now - duration, now] keeps it open now
        if _opens_at(s.cron, zone, at):
            return True
        at -= MINUTE
    return False


@settings(max_examples=300, deadline=None, database=None)
@given(
    change=st.sampled_from(CHANGES),
    cron=st.sampled_from(CRONS),
    duration=st.sampled_from(DURATIONS),
    seconds=st.integers(-6 * 3600, 6 * 3600),
    warm=st.integers(-6 * 3600, 6 * 3600),
)
def test_windows_follow_the_wall_clock_across_dst(
    change: tuple[str, datetime], cron: str, duration: str, seconds: int, warm: int
) -> None:
    zone, at = change
    s = Schedule.model_validate({"cron": cron, "duration": duration, "timezone": zone, "min": 1})
    now = at + timedelta(seconds=seconds)
    S._SPANS.clear()
    fresh = S.active_window(s, now)
    assert (fresh is not None) == _open_by_reference(s, now), (now, fresh)
    if fresh is not None:
        assert fresh.start <= now < fresh.end
        assert _opens_at(cron, ZoneInfo(zone), fresh.start)
    # the same answer after any other call: a replay agrees with the live pass
    S.active_window(s, at + timedelta(seconds=warm))
    assert S.active_window(s, now) == fresh
