"""Warm machines of a pool that names its launch template by $Default or $Latest are judged
against the version that gives now (pure: literal snapshots)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from autoscaler.decide.plan_types import FillWarmPool, RetireWarmMachine
from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.launch_config import (
    EC2_TEMPLATE_ID,
    EC2_TEMPLATE_VERSION,
    in_force,
    launch_config,
    stale_because,
)
from autoscaler.rules.pools import PoolPolicy
from autoscaler.snapshot import Instance, LaunchTemplateNow
from tests.pools_builders import machine, node, on, pool, reasons, run, snapshot

TEMPLATE = "shiny-worker"
TEMPLATE_ID = "lt-0123456789abcdef0"
EC2 = {"instance_types": ["m6i.xlarge"], "subnets": ["subnet-1"]}


def ec2_pool(
    version: str = "$Default", warm: int = 1, images: tuple[str, ...] = (), **ec2: Any
) -> PoolPolicy:
    section = {**EC2, "launch_template": TEMPLATE, "launch_template_version": version, **ec2}
    return pool(provider="ec2", images=list(images), ec2={**section, "warm_pool": warm})


def template(default: int | None = 3, latest: int | None = 4, error: str | None = None) -> Any:
    if error is not None:
        return LaunchTemplateNow(id=TEMPLATE_ID, error=error)
    return LaunchTemplateNow(
        id=TEMPLATE_ID, name=TEMPLATE, default_version=default, latest_version=latest
    )


def warm(name: str, launched: int | None, digest: str, now: Any = None) -> Instance:
    """A stopped warm machine launched from version ``launched`` (EC2's own tags say so),
    tagged ``digest``; ``now``: its template as read in this pass."""
    tags = {L.TAG_LAUNCH_CONFIG: digest, EC2_TEMPLATE_ID: TEMPLATE_ID}
    if launched is not None:
        tags[EC2_TEMPLATE_VERSION] = str(launched)
    inst = machine(name, state="stopped", age=timedelta(minutes=5), warm=True)
    shape = {"instance_type": "m6i.xlarge", "subnet": "subnet-1", "tags": tags}
    return inst.model_copy(update={**shape, "launch_template": now})


def retired(plan: Any) -> dict[str, str]:
    acts = on(plan, "retire_warm_machine")
    return {a.instance_id: a.reason for a in acts if isinstance(a, RetireWarmMachine)}


def fills(plan: Any) -> list[int]:
    return [a.count for a in on(plan, "fill_warm_pool") if isinstance(a, FillWarmPool)]


# ---------------------------------------------------------------- the digest


def test_a_new_default_version_changes_the_digest() -> None:
    p = ec2_pool("$Default")
    assert launch_config(p, 3) == launch_config(p, 3)
    assert launch_config(p, 4) != launch_config(p, 3)
    assert launch_config(p, 3) != launch_config(p)  # the number, not the word


def test_the_number_a_selector_gives_is_the_digest_of_naming_that_number() -> None:
    # the same machine: switching the pool between them renews nothing
    named = launch_config(ec2_pool("5"))
    assert launch_config(ec2_pool("$Default"), 5) == named
    assert launch_config(ec2_pool("$Latest"), 5) == named
    assert launch_config(ec2_pool("6")) != named


def test_numbered_versions_and_images_keep_their_digest() -> None:
    numbered = ec2_pool("5")
    assert launch_config(numbered, 9) == launch_config(numbered)
    image = pool(provider="ec2", ec2={**EC2, "ami": "ami-1"})
    assert launch_config(image, 9) == launch_config(image)
    both = ec2_pool("5", ami="ami-1")
    assert launch_config(both, 9) == launch_config(both)


# ---------------------------------------------------------------- the version in force


def test_the_version_in_force_is_read_from_the_machines_templates() -> None:
    machines = [warm("w1", 3, "x", template(default=3, latest=4))]
    assert in_force(ec2_pool("$Default"), machines).number == 3
    assert in_force(ec2_pool("$Latest"), machines).number == 4
    assert in_force(ec2_pool("$Default", launch_template=TEMPLATE_ID), machines).number == 3
    assert in_force(ec2_pool("$Default", launch_template="another"), machines).number is None
    # a pool that names a number, or no machine from a template: nothing to read
    assert in_force(ec2_pool("3"), machines).number is None
    assert in_force(ec2_pool("$Default"), []).unknown is None
    unread = [warm("w1", 3, "x")]
    assert in_force(ec2_pool("$Default"), unread).unknown == (
        "its machines' launch template not read"
    )
    down = [warm("w1", 3, "x", template(error="EC2 refused (UnauthorizedOperation)"))]
    assert in_force(ec2_pool("$Default"), down).number is None
    assert in_force(ec2_pool("$Default"), down).unknown == "EC2 refused (UnauthorizedOperation)"


def test_a_warm_machine_of_the_old_default_is_stale_once_the_template_has_a_new_one() -> None:
    p = ec2_pool("$Default", warm=1)
    launched = launch_config(p, 3)
    current = warm("w1", 3, launched, template(default=3))
    plan = run(snapshot([node("a")], machines=[machine("a"), current]), p)
    assert retired(plan) == {} and fills(plan) == []
    renewed = warm("w1", 3, launched, template(default=4))
    plan = run(snapshot([node("a")], machines=[machine("a"), renewed]), p)
    assert retired(plan) == {
        "i-w1": "warm-pool machine i-w1 is stale: launched with version 3 of launch template "
        "shiny-worker, and $Default is now version 4"
    }
    assert fills(plan) == [1]


def test_latest_follows_the_latest_version_not_the_default() -> None:
    p = ec2_pool("$Latest", warm=1)
    machines = [machine("a"), warm("w1", 4, launch_config(p, 4), template(default=3, latest=5))]
    plan = run(snapshot([node("a")], machines=machines), p)
    assert list(retired(plan)) == ["i-w1"] and fills(plan) == [1]


def test_an_unknown_version_never_makes_a_machine_stale_and_says_why() -> None:
    p = ec2_pool("$Default", warm=1)
    down = template(error="EC2 refused (UnauthorizedOperation)")
    # launched with version 3 (digest holds it), or before digests held a number
    for digest in (launch_config(p, 3), launch_config(p)):
        kept = warm("w1", 3, digest, down)
        plan = run(snapshot([node("a")], machines=[machine("a"), kept]), p)
        assert retired(plan) == {} and fills(plan) == []
        assert (
            "launch template shiny-worker $Default unknown (EC2 refused "
            "(UnauthorizedOperation)): warm machines not judged on its version"
        ) in reasons(plan)
        assert stale_because(kept, p, launch_config(p), None) is None


def test_an_unknown_version_still_judges_everything_else() -> None:
    p = ec2_pool("$Default", warm=1)
    other_images = launch_config(ec2_pool("$Default", images=("r-app:2",)), 3)
    edited = warm("w1", 3, other_images, template(error="not found"))
    plan = run(snapshot([node("a")], machines=[machine("a"), edited]), p)
    assert "another image" in retired(plan)["i-w1"]
    assert fills(plan) == [1]


def test_a_machine_tagged_before_digests_held_the_number_is_kept_if_it_runs_it() -> None:
    # its digest holds $Default itself; EC2's own tag says which version it runs
    p = ec2_pool("$Default", warm=1)
    old = launch_config(p)
    plan = run(snapshot([node("a")], machines=[machine("a"), warm("w1", 3, old, template())]), p)
    assert retired(plan) == {}
    behind = warm("w1", 2, old, template(default=3))
    plan = run(snapshot([node("a")], machines=[machine("a"), behind]), p)
    assert "launched with version 2" in retired(plan)["i-w1"]
    # no record of the version at all: only the digest of the version in force will do
    unrecorded = warm("w1", None, old, template(default=3))
    plan = run(snapshot([node("a")], machines=[machine("a"), unrecorded]), p)
    assert "another image" in retired(plan)["i-w1"]


def test_a_numbered_version_is_judged_by_its_digest_alone() -> None:
    p = ec2_pool("3", warm=1)
    # the template's default moved on: a pool naming 3 still launches 3
    same = warm("w1", 3, launch_config(p), template(default=4))
    plan = run(snapshot([node("a")], machines=[machine("a"), same]), p)
    assert retired(plan) == {} and fills(plan) == []
    # launched by a $Default that gave 3: the same machine
    switched = warm("w1", 3, launch_config(ec2_pool("$Default"), 3), template(default=4))
    plan = run(snapshot([node("a")], machines=[machine("a"), switched]), p)
    assert retired(plan) == {}
