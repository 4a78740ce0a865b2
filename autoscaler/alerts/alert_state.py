"""The alert rules' states on disk, so a restart neither forgets a firing alert (its
"resolved" message would never come) nor sends it again as new.

Written atomically when it changed; a file that cannot be read (corrupt, from another
version) is reported and the sidecar starts with no states, as before it had a file.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autoscaler.alerts.evaluate import ActiveAlert
from autoscaler.atomic import write_atomic

log = logging.getLogger(__name__)

States = dict[str, dict[str, ActiveAlert]]
"""Rule name -> fingerprint -> state."""

_TIMES = ("active_at", "fired_at", "resolved_at", "keep_firing_since")


def dump_states(states: States) -> str:
    rules = {
        name: {fp: _row(a) for fp, a in sorted(alerts.items())}
        for name, alerts in sorted(states.items())
        if alerts
    }
    return json.dumps({"version": 1, "rules": rules}, sort_keys=True)


def load_states(path: Path) -> States:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rules = raw.get("rules") if isinstance(raw, dict) else None
        if not isinstance(rules, dict):
            raise ValueError("no 'rules' object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as e:
        log.error("alert states %s unreadable (%s): starting with none", path, e)
        return {}
    out: States = {}
    skipped = 0
    for name, alerts in rules.items():
        if not isinstance(alerts, dict):
            skipped += 1
            continue
        for fp, row in alerts.items():
            try:
                out.setdefault(str(name), {})[str(fp)] = _alert(row)
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1
    if skipped:
        log.error("alert states %s: %d unreadable entries left out", path, skipped)
    return out


def save_states(path: Path, text: str) -> bool:
    """Write ``text`` (``dump_states``); False, with an error logged, when it cannot."""
    try:
        write_atomic(path, text)
    except OSError as e:
        log.error("alert states %s not written: %s", path, e)
        return False
    return True


def _row(a: ActiveAlert) -> dict[str, Any]:
    row: dict[str, Any] = {
        "labels": a.labels,
        "annotations": a.annotations,
        "value": a.value,
        "state": a.state,
    }
    for key in _TIMES:
        at = getattr(a, key)
        row[key] = at.isoformat() if at is not None else None
    return row


def _alert(row: Any) -> ActiveAlert:
    if row["state"] not in ("pending", "firing", "inactive"):
        raise ValueError(f"unknown state {row['state']!r}")
    labels, annotations = row["labels"], row["annotations"]
    for d in (labels, annotations):
        if not isinstance(d, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in d.items()
        ):
            raise TypeError("not a mapping of texts")
    times = {key: _time(row.get(key)) for key in _TIMES}
    if times["active_at"] is None:
        raise ValueError("no active_at")
    return ActiveAlert(
        labels=labels,
        annotations=annotations,
        value=float(row["value"]),
        state=row["state"],
        active_at=times["active_at"],
        fired_at=times["fired_at"],
        resolved_at=times["resolved_at"],
        keep_firing_since=times["keep_firing_since"],
    )


def _time(text: Any) -> datetime | None:
    if text is None:
        return None
    at = datetime.fromisoformat(str(text))
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
