"""The local provider's bookkeeping, with the lab's boot and retire hooks replaced by
recorders (the hooks themselves run for real in test_pools_lab.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autoscaler.actuate.machines import MachineActuator
from autoscaler.decide.plan_types import LaunchNodes, TerminateInstance
from autoscaler.providers.base import ProviderError
from autoscaler.providers.local import LocalProvider
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from autoscaler.sources.errors import SourceError

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
POLICY = PoolPolicy.model_validate(
    {"provider": "local", "max": 4, "seats_per_node": 4, "local": {"boot_delay": "0s"}}
)


@dataclass
class Booted:
    ip: str


class Hooks:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.booted: list[str] = []
        self.retired: list[str] = []
        self.release = threading.Event()
        self.release.set()

    def boot(self, root: Path, name: str, boot_delay: float) -> Booted:
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("engine did not start")
        self.booted.append(name)
        return Booted(ip="10.1.2.3")

    def retire(self, root: Path, name: str) -> None:
        self.retired.append(name)


def make(tmp_path: Path, hooks: Hooks) -> LocalProvider:
    return LocalProvider(tmp_path, "lab", boot=hooks.boot, retire=hooks.retire, clock=lambda: NOW)


def test_launch_boots_in_the_background_and_lists(tmp_path: Path) -> None:
    hooks = Hooks()
    hooks.release.clear()
    p = make(tmp_path, hooks)
    ids = p.launch("web", POLICY, 2, "tok-1")
    listed = p.list_instances()
    assert [i.id for i in listed] == sorted(ids)
    assert {i.state for i in listed} == {"pending"}
    assert all(i.launched_at == NOW and i.private_dns.startswith("web-") for i in listed)
    hooks.release.set()
    p.wait_boots()
    assert {i.state for i in p.list_instances()} == {"running"}
    assert sorted(hooks.booted) == sorted(i.private_dns for i in listed)
    # a restarted sidecar (a new provider on the same folder) sees the same machines
    assert make(tmp_path, hooks).list_instances() == p.list_instances()


def test_same_token_launches_nothing_more(tmp_path: Path) -> None:
    hooks = Hooks()
    p = make(tmp_path, hooks)
    first = p.launch("web", POLICY, 2, "tok-same")
    assert p.launch("web", POLICY, 2, "tok-same") == sorted(first)
    p.wait_boots()
    assert len(p.list_instances()) == 2 and len(hooks.booted) == 2


def test_failed_boot_stays_pending_for_the_join_timeout(tmp_path: Path) -> None:
    hooks = Hooks(fail=True)
    p = make(tmp_path, hooks)
    (mid,) = p.launch("web", POLICY, 1, "tok-fail")
    p.wait_boots()
    assert [(i.id, i.state) for i in p.list_instances()] == [(mid, "pending")]
    assert p.terminate(mid, "web").startswith("terminated")
    assert p.list_instances() == ()


def test_terminate_while_booting_leaves_no_engine(tmp_path: Path) -> None:
    hooks = Hooks()
    hooks.release.clear()
    p = make(tmp_path, hooks)
    (mid,) = p.launch("web", POLICY, 1, "tok-cancel")
    name = p.list_instances()[0].private_dns
    p.terminate(mid, "web")
    hooks.release.set()
    p.wait_boots()
    assert hooks.retired.count(name) == 2  # at terminate, and again once the boot finished
    assert p.list_instances() == ()


def test_terminate_refuses_another_pools_machine(tmp_path: Path) -> None:
    p = make(tmp_path, Hooks())
    (mid,) = p.launch("batch", POLICY, 1, "tok-b")
    with pytest.raises(ProviderError, match="not a machine of pool web"):
        p.terminate(mid, "web")
    assert p.terminate("lab-gone", "web") == "lab-gone already gone"


def test_missing_lab_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no lab folder"):
        make(tmp_path / "nope", Hooks()).list_instances()


def test_machine_actuator_routes_to_the_provider(tmp_path: Path) -> None:
    hooks = Hooks()
    p = make(tmp_path, hooks)
    published: list[str] = []
    act = MachineActuator(
        {"local": p},
        lambda: Policies(pools={"web": POLICY}),
        lambda provider, action: published.append(provider),
    )
    launch = LaunchNodes(pool="web", provider="local", count=1, reason="t", token="tok-a")
    result = act.execute(launch)
    assert result.ok and result.message.startswith("launched 1 of 1 for pool web")
    assert published == ["local"]
    p.wait_boots()
    (inst,) = p.list_instances()
    term = TerminateInstance(instance_id=inst.id, pool="web", provider="local", reason="t")
    assert act.execute(term).ok
    unknown: Any = act.execute(launch.model_copy(update={"provider": "ec2"}))
    assert not unknown.ok and "provider ec2 not configured" in unknown.message
    gone = act.execute(launch.model_copy(update={"pool": "old"}))
    assert not gone.ok and "not in the rules" in gone.message
