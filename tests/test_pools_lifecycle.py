"""The node lifecycle, pure: every state and transition, from literal snapshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from autoscaler.decide.plan_types import (
    DrainNode,
    LabelNode,
    Notify,
    PauseNode,
    PoolMemory,
    RemoveNode,
    TerminateInstance,
)
from autoscaler.decide.pools import labels as L
from autoscaler.decide.pools.inventory import STATES, take_inventory
from autoscaler.rules.schema import Signal
from tests.pools_builders import (
    POOL,
    T0,
    hosts,
    kinds,
    machine,
    node,
    on,
    pending,
    pool,
    reasons,
    run,
    sessions,
    snapshot,
)

LONG_AGO = PoolMemory(unneeded_since=T0 - timedelta(minutes=11))


def ago(minutes: float) -> str:
    return L.stamp(T0 - timedelta(minutes=minutes))


def paused(name: str, minutes: float = 1, **extra: str) -> Any:
    return node(name, state="paused", extra={L.PAUSED_AT: ago(minutes), **extra})


def draining(name: str, minutes: float) -> Any:
    return node(name, state="draining", extra={L.DRAINING_AT: ago(minutes)})


# ---------------------------------------------------------------- states


def test_every_state_is_recognised() -> None:
    nodes = [
        node("active"),
        node("joining", ready="unknown", state=""),  # labelled with the pool, never Ready
        paused("paused"),
        draining("draining", 0),
        node("gone", ready="down"),
        node("down", ready="down"),
        node("held", availability="pause"),  # paused by a person, labels say active
        node("late", ready="unknown", state=""),
        node("reclaimed"),  # its Spot machine has an interruption notice
    ]
    machines = [
        machine("active"),
        machine("joining", age=timedelta(minutes=1)),
        machine("paused"),
        machine("draining"),
        machine("gone", state="terminated"),
        machine("down"),
        machine("held"),
        machine("late", age=timedelta(minutes=11)),
        machine("launching", age=timedelta(minutes=1)),
        machine("never", age=timedelta(minutes=30)),
        machine("warm", state="stopped", warm=True),
        machine("stopped", state="stopped"),  # not tagged warm (a failed start): reused too
        machine("leaving", state="shutting-down"),
        machine("reclaimed").model_copy(update={"interrupted": True}),
    ]
    inv = take_inventory(POOL, pool(), snapshot(nodes, machines=machines))
    by_state = {m.name: m.state for m in inv.members}
    assert by_state == {
        "active": "active",
        "joining": "joining",
        "paused": "paused",
        "draining": "draining",
        "gone": "terminated",
        "down": "down",
        "held": "held",
        "late": "join_timeout",
        "i-launching": "launching",
        "i-never": "join_timeout",
        "i-leaving": "removed",
        "reclaimed": "interrupted",
    }
    assert set(by_state.values()) == set(STATES)
    assert inv.warm == 2


# ---------------------------------------------------------------- scale-in


@pytest.mark.parametrize(
    ("since_minutes", "pauses"),
    [(None, 0), (5, 0), (9.9, 0), (10, 1), (60, 1)],
)
def test_scale_in_only_after_unneeded_for(since_minutes: float | None, pauses: int) -> None:
    memory = (
        PoolMemory(unneeded_since=T0 - timedelta(minutes=since_minutes))
        if since_minutes is not None
        else None
    )
    nodes = [node("a"), node("b"), node("c")]
    p = run(snapshot(nodes, sessions("a", 2)), pool(), memory=memory)
    assert len(on(p, "pause_node")) == pauses, reasons(p)
    assert p.memory.pools[POOL].unneeded_since == (
        T0 - timedelta(minutes=since_minutes) if since_minutes is not None else T0
    )
    if not pauses:
        assert "pausing waits until" in reasons(p)


def test_surplus_gone_resets_the_clock() -> None:
    p = run(snapshot([node("a")], sessions("a", 3)), pool(), memory=LONG_AGO)
    assert p.memory.pools[POOL].unneeded_since is None


def test_pause_the_emptiest_node_per_step() -> None:
    nodes = [node("a"), node("b"), node("c"), node("d")]
    sess = sessions("a", 3) + sessions("b", 1, start=10) + sessions("c", 2, start=20)
    p = run(snapshot(nodes, sess), pool(), memory=LONG_AGO)
    assert hosts(p, "pause_node") == ["d"]
    (action,) = on(p, "pause_node")
    assert isinstance(action, PauseNode) and action.at == T0
    two = run(snapshot(nodes, sess), pool(scale_in={"nodes_per_step": 2}), memory=LONG_AGO)
    assert hosts(two, "pause_node") == ["d", "b"]


def test_never_below_min() -> None:
    nodes = [node("a"), node("b"), node("c")]
    p = run(snapshot(nodes), pool(min=3), memory=LONG_AGO)
    assert kinds(p) == []


def test_a_node_without_a_machine_is_never_retired() -> None:
    """Labelled by hand: capacity, but retiring it would leave its machine running."""
    nodes = [node("a"), node("static", instance="i-none")]
    p = run(snapshot(nodes, sessions("a", 1), [machine("a")]), pool(), memory=LONG_AGO)
    assert hosts(p, "pause_node") == ["a"]  # though "static" is the emptiest
    assert p.pools[0].nodes["active"] == 2


def test_nodes_per_step_never_exceeds_surplus() -> None:
    nodes = [node("a"), node("b"), node("c")]
    p = run(snapshot(nodes, sessions("a", 4)), pool(scale_in={"nodes_per_step": 5}), LONG_AGO)
    assert hosts(p, "pause_node") == ["b", "c"]


# ---------------------------------------------------------------- paused -> draining


@pytest.mark.parametrize(
    "task_state",
    ["new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting",
     "running"],
)  # fmt: skip
def test_paused_with_sessions_waits(task_state: str) -> None:
    """Whatever state its task is in on the way to running, a session keeps its node."""
    nodes = [node("a"), paused("p", minutes=600)]
    here = sessions("p", 1, start=10) + sessions("p", 1, start=11, state=task_state)
    p = run(snapshot(nodes, sessions("a", 1) + here), pool())
    assert kinds(p) == []
    assert "waiting for 2 session(s) to end" in reasons(p)


def test_paused_without_user_sessions_drains() -> None:
    nodes = [node("a"), paused("p")]
    p = run(snapshot(nodes, sessions("a", 1)), pool())
    (action,) = on(p, "drain_node")
    assert isinstance(action, DrainNode)
    assert action.hostname == "p" and not action.end_sessions and action.at == T0


def test_a_pre_initialised_container_keeps_its_node() -> None:
    """Users claim the seats of a shared container inside ShinyProxy, and its labels never
    say so: the node waits for ShinyProxy to remove the container, as for a session."""
    nodes = [node("a"), paused("p", minutes=600)]
    sess = sessions("a", 1) + sessions("p", 1, user=False, start=10)
    p = run(snapshot(nodes, sess), pool())
    assert not on(p, "drain_node"), reasons(p)
    assert "waiting for 1 session(s) to end" in reasons(p)
    assert p.pools[0].live_sessions == 1  # the shared container is no user's session
    # an active node holding only one is paused to empty, like a node with a session
    spare = run(snapshot([node("a"), node("b")], sessions("a", 2) + sessions("b", 1, user=False)),
                pool(), memory=LONG_AGO)  # fmt: skip
    (pause,) = on(spare, "pause_node")
    assert isinstance(pause, PauseNode) and pause.hostname == "b"
    assert "it empties while 1 session(s) end" in pause.reason


def test_paused_without_paused_at_starts_the_wait_now() -> None:
    nodes = [node("a"), node("p", state="paused")]
    p = run(snapshot(nodes, sessions("a", 1)), pool())
    (action,) = on(p, "label_node")
    assert isinstance(action, LabelNode) and action.labels == {L.PAUSED_AT: L.stamp(T0)}
    assert not on(p, "drain_node")


def test_sessions_never_ended_unless_allowed() -> None:
    nodes = [node("a"), paused("p", minutes=60 * 24 * 7)]
    snap = snapshot(nodes, sessions("a", 1) + sessions("p", 1, start=10))
    assert not on(run(snap, pool()), "drain_node")
    assert not on(run(snap, pool(scale_in={"session_grace": "8h"})), "drain_node")


ENDING = {"allow_ending_sessions": True, "session_grace": "2h", "ending_notice": "5m"}


@pytest.mark.parametrize(
    ("paused_minutes", "marks", "delivered_minutes", "expect"),
    [
        (60, {}, None, []),  # grace not over
        (121, {}, None, ["notify", "label_node"]),  # grace over: alert raised and marked
        (130, {"notified": 2}, None, ["notify"]),  # raised, no receiver took it: kept firing
        (130, {"notified": 10}, 11, ["notify"]),  # only an earlier alert was delivered
        (130, {"notified": 10}, 9, ["notify", "label_node"]),  # delivered: marked
        (130, {"notified": 10, "delivered": 4}, None, ["notify"]),  # notice not over
        (130, {"notified": 10, "delivered": 5}, None, ["notify", "drain_node"]),  # ended
        (130, {"notified": 10, "delivered": 20}, None, ["notify"]),  # an earlier alert's mark
    ],
)
def test_sessions_end_only_after_the_alert_was_delivered(
    paused_minutes: float,
    marks: dict[str, float],
    delivered_minutes: float | None,
    expect: list[str],
) -> None:
    names = {"notified": L.NOTIFIED_AT, "delivered": L.DELIVERED_AT}
    extra = {names[k]: ago(v) for k, v in marks.items()}
    nodes = [node("a"), paused("p", minutes=paused_minutes, **extra)]
    snap = snapshot(nodes, sessions("a", 1) + sessions("p", 1, start=10))
    if delivered_minutes is not None:
        delivered = {f"{POOL}/p": T0 - timedelta(minutes=delivered_minutes)}
        snap = snap.model_copy(update={"notices_delivered": delivered})
    p = run(snap, pool(scale_in=ENDING))
    assert kinds(p) == expect, reasons(p)
    if "notify" in expect:
        (alert,) = on(p, "notify")
        assert isinstance(alert, Notify) and alert.alert == "PoolEndingSessions"
        assert alert.labels == {"pool": POOL, "node": "p"}
        assert "1 session(s) on p will be ended 5m after this alert is delivered" in alert.summary
    if "label_node" in expect:
        (mark,) = on(p, "label_node")
        assert isinstance(mark, LabelNode)
        when = ago(0) if not marks else ago(delivered_minutes or 0)
        key = L.NOTIFIED_AT if not marks else L.DELIVERED_AT
        assert mark.labels == {key: when}
    if "drain_node" in expect:
        (drain,) = on(p, "drain_node")
        assert isinstance(drain, DrainNode) and drain.end_sessions
    if expect == ["notify"]:  # why nothing ends yet
        fresh = marks.get("delivered", 99) < marks["notified"]
        assert ("ending them after 12:01:00Z" if fresh else "not delivered") in reasons(p)


@pytest.mark.parametrize("how", ["marks left from an earlier pause", "paused-at rewritten"])
def test_an_alert_raised_before_the_pause_ends_no_session(how: str) -> None:
    """The ending notice runs from an alert raised for this wait, never an earlier one."""
    if how == "marks left from an earlier pause":
        marks = {L.NOTIFIED_AT: ago(300), L.DELIVERED_AT: ago(299)}
        nodes = [node("a"), paused("p", minutes=130, **marks)]
    else:  # paused-at unreadable: the wait started again now, the old marks stay
        marks = {L.NOTIFIED_AT: ago(30), L.DELIVERED_AT: ago(29)}
        nodes = [node("a"), paused("p", minutes=1, **marks)]
    snap = snapshot(nodes, sessions("a", 1) + sessions("p", 1, start=10))
    p = run(snap, pool(scale_in={**ENDING, "session_grace": "1m"}))
    assert not on(p, "drain_node"), reasons(p)
    # a new alert is raised and marked; the sessions end ending_notice after its delivery
    assert kinds(p) == ["notify", "label_node"], reasons(p)
    (mark,) = on(p, "label_node")
    assert isinstance(mark, LabelNode) and mark.labels == {L.NOTIFIED_AT: ago(0)}


# ---------------------------------------------------------------- draining -> removed -> terminated


@pytest.mark.parametrize("state", ["running", "starting", "assigned"])
def test_a_drained_node_still_holding_a_session_is_not_removed(state: str) -> None:
    nodes = [node("a"), draining("d", 5)]
    for held in (sessions("d", 1, state=state), sessions("d", 1, user=False, state=state)):
        p = run(snapshot(nodes, sessions("a", 1) + held), pool())
        assert kinds(p) == [], reasons(p)
        assert "d drained but still holds 1 user session(s)" in reasons(p)
    # finished tasks hold nothing; and a pool that may end sessions removes it
    done = sessions("d", 1, state="shutdown")
    assert kinds(run(snapshot(nodes, sessions("a", 1) + done), pool())) == [
        "remove_node",
        "terminate_instance",
    ]
    held = sessions("d", 1, state=state)
    allowed = run(snapshot(nodes, sessions("a", 1) + held), pool(scale_in=ENDING))
    assert kinds(allowed) == ["remove_node", "terminate_instance"]


def test_draining_waits_then_removes_and_terminates() -> None:
    early = run(snapshot([node("a"), draining("d", 0.2)], sessions("a", 1)), pool())
    assert kinds(early) == []
    late = run(snapshot([node("a"), draining("d", 1)], sessions("a", 1)), pool())
    assert kinds(late) == ["remove_node", "terminate_instance"]
    (term,) = on(late, "terminate_instance")
    assert isinstance(term, TerminateInstance) and term.instance_id == "i-d"
    assert term.after_removal_of == "id-d"  # not terminated if the removal is refused


def test_a_machine_left_shutting_down_is_terminated_again() -> None:
    """A restart between 'shutting down' and 'gone' must not leave the machine behind."""
    machines = [machine("a"), machine("left", state="shutting-down")]
    p = run(snapshot([node("a")], sessions("a", 1), machines), pool())
    assert kinds(p) == ["terminate_instance"]
    assert p.pools[0].nodes["removed"] == 1
    # it does not count against max: a replacement may launch meanwhile
    full = run(snapshot([node("a")], sessions("a", 4) + pending(1), machines), pool(max=2))
    assert kinds(full) == ["launch_nodes", "terminate_instance"]


def test_down_node_whose_machine_is_gone_is_removed() -> None:
    nodes = [node("a"), node("gone", ready="down")]
    p = run(snapshot(nodes, sessions("a", 1), [machine("a")]), pool())
    assert kinds(p) == ["remove_node"]
    assert p.pools[0].nodes["terminated"] == 1
    still = run(snapshot(nodes, sessions("a", 1)), pool())
    assert kinds(still) == []
    unknown = snapshot(nodes, sessions("a", 1)).model_copy(update={"instances": None})
    assert kinds(run(unknown, pool())) == []


def test_a_down_node_that_names_no_machine_is_left_alone() -> None:
    """Labelled by hand (no instance id, a host name no machine has): nothing says its
    machine is gone; Swarm says down of a node out of reach for a moment, and removing it
    from the Swarm would end its sessions."""
    hand = node("hand", ready="down")
    hand = hand.model_copy(update={"labels": {L.POOL: POOL, L.STATE: "active"}})
    held = sessions("a", 1) + sessions("hand", 2, start=5)
    snap = snapshot([node("a"), hand], held, [machine("a")])
    p = run(snap, pool())
    assert kinds(p) == [], reasons(p)
    assert p.pools[0].nodes["down"] == 1 and p.pools[0].nodes["terminated"] == 0


@pytest.mark.parametrize("old_state", ["unknown", "disconnected"])
def test_an_older_node_of_a_machine_never_terminates_the_machine(old_state: str) -> None:
    """The machine's engine left and joined the Swarm again: the old node (labelled while it
    was joining, never Ready) is out of reach for a moment, its machine runs the new node,
    which holds sessions. Terminating the machine for the old node's join would end them."""
    old = node("web-1", ready=old_state, state="", instance="i-web-1")
    old = old.model_copy(update={"id": "id-web-1-old"})
    new = node("web-1", instance="i-web-1")
    machines = [machine("a"), machine("web-1", age=timedelta(minutes=30))]
    snap = snapshot([node("a"), old, new], sessions("web-1", 2), machines)
    p = run(snap, pool())
    assert not on(p, "terminate_instance") and not on(p, "notify"), reasons(p)
    assert "its machine i-web-1 runs node web-1 (id-web-1): an older node" in reasons(p)


# ---------------------------------------------------------------- launching -> joining -> active


def test_join_timeout_terminates_and_alerts() -> None:
    machines = [machine("a"), machine("slow", age=timedelta(minutes=9))]
    p = run(snapshot([node("a")], sessions("a", 1), machines), pool())
    assert kinds(p) == []
    machines[1] = machine("slow", age=timedelta(minutes=10))
    p = run(snapshot([node("a")], sessions("a", 1), machines), pool())
    assert kinds(p) == ["notify", "terminate_instance"]
    (alert,) = on(p, "notify")
    assert isinstance(alert, Notify) and alert.alert == "PoolNodeJoinTimeout"


@pytest.mark.parametrize("swarm_state", ["unknown", "disconnected"])
@pytest.mark.parametrize("lifecycle", ["active", "paused"])
def test_a_node_out_of_reach_after_it_joined_is_left_alone(
    swarm_state: str, lifecycle: str
) -> None:
    """Swarm reports every node unknown for a moment after a leader election: a node that
    was Ready (labelled) or holds sessions is out of reach, not a join that timed out."""
    lost = node("b", state=lifecycle, ready=swarm_state, extra={L.PAUSED_AT: ago(5)})
    machines = [machine("a"), machine("b", age=timedelta(days=5))]
    p = run(snapshot([node("a"), lost], sessions("a", 1) + sessions("b", 3), machines), pool())
    assert not on(p, "terminate_instance") and not on(p, "notify"), reasons(p)
    assert not on(p, "drain_node") and not on(p, "remove_node")
    assert p.pools[0].nodes["down"] == 1 and p.pools[0].nodes["join_timeout"] == 0
    # the commonest case: labelled and empty, the Swarm's leader just changed
    p = run(snapshot([node("a"), lost], sessions("a", 1), machines), pool())
    assert not on(p, "terminate_instance") and p.pools[0].nodes["down"] == 1, reasons(p)
    # unlabelled (its label never landed) but holding sessions: out of reach too
    stranger = node("ip-10-0-0-9", pool_name=None, ready=swarm_state)
    machines = [machine("a"), machine("new", age=timedelta(days=5), dns="ip-10-0-0-9.ec2")]
    held = sessions("ip-10-0-0-9", 2)
    p = run(snapshot([node("a"), stranger], sessions("a", 1) + held, machines), pool())
    assert not on(p, "terminate_instance"), reasons(p)
    assert p.pools[0].nodes["down"] == 1


def test_a_timed_out_join_is_replaced() -> None:
    machines = [machine("a"), machine("never", age=timedelta(hours=1))]
    p = run(snapshot([node("a")], sessions("a", 4), machines), pool(min=2))
    assert kinds(p) == ["launch_nodes", "notify", "terminate_instance"]


@pytest.mark.parametrize("joined_hours_ago", [0.5, None])
def test_a_timed_out_machine_is_kept_while_an_unknown_worker_may_be_its_node(
    joined_hours_ago: float | None,
) -> None:
    """A worker that joined since the machine's launch but matches no machine (a custom
    host name, another address) may be it, with sessions: alerted, never terminated."""
    joined = T0 - timedelta(hours=joined_hours_ago) if joined_hours_ago is not None else None
    stranger = node("custom-7", pool_name=None).model_copy(update={"joined_at": joined})
    machines = [machine("a"), machine("never", age=timedelta(hours=1))]
    held = sessions("a", 1) + sessions("custom-7", 2)
    p = run(snapshot([node("a"), stranger], held, machines), pool())
    assert not on(p, "terminate_instance"), reasons(p)
    (alert,) = on(p, "notify")
    assert isinstance(alert, Notify) and alert.labels == {"pool": POOL, "instance": "i-never"}
    assert "not terminated: worker custom-7 joined since" in alert.summary
    assert f"label it {L.INSTANCE}=i-never" in alert.summary
    assert p.pools[0].nodes["join_timeout"] == 1
    assert not {getattr(a, "hostname", None) for a in p.actions} & {"custom-7"}
    # kept, it counts against max: a pool at max 2 launches no third machine
    p = run(snapshot([node("a"), stranger], held, machines), pool(min=2, max=2))
    assert not on(p, "launch_nodes"), reasons(p)
    # labelled as the alert says: adopted, with its sessions
    claimed = stranger.model_copy(update={"labels": {L.INSTANCE: "i-never"}})
    p = run(snapshot([node("a"), claimed], held, machines), pool())
    assert not on(p, "terminate_instance") and p.pools[0].nodes["active"] == 2, reasons(p)
    (label,) = on(p, "label_node")
    assert isinstance(label, LabelNode) and label.labels[L.POOL] == POOL


def test_a_worker_that_joined_before_the_launch_does_not_hold_a_timed_out_machine() -> None:
    static = node("static-1", pool_name=None).model_copy(
        update={"joined_at": T0 - timedelta(days=30)}
    )
    machines = [machine("a"), machine("never", age=timedelta(hours=1))]
    p = run(snapshot([node("a"), static], sessions("a", 1), machines), pool())
    assert kinds(p) == ["notify", "terminate_instance"], reasons(p)
    (alert,) = on(p, "notify")
    assert isinstance(alert, Notify) and alert.summary.endswith("terminating it")


def test_newcomer_is_labelled_and_counts_once_ready() -> None:
    newcomer = node("ip-10-0-0-9", pool_name=None)
    machines = [machine("a"), machine("new", age=timedelta(minutes=1), dns="ip-10-0-0-9.ec2")]
    p = run(snapshot([node("a"), newcomer], sessions("a", 4), machines), pool(min=2))
    (label,) = on(p, "label_node")
    assert isinstance(label, LabelNode) and label.hostname == "ip-10-0-0-9"
    assert label.labels == {L.POOL: POOL, L.STATE: "active", L.INSTANCE: "i-new"}
    assert not on(p, "launch_nodes")
    assert p.pools[0].nodes["active"] == 2
    # EC2's resource-name host names are the instance id, whatever the private DNS name
    named = node("i-new.eu-west-1.compute.internal", pool_name=None)
    p = run(snapshot([node("a"), named], sessions("a", 4), machines), pool(min=2))
    (label,) = on(p, "label_node")
    assert isinstance(label, LabelNode) and label.labels[L.INSTANCE] == "i-new"
    assert not on(p, "terminate_instance") and p.pools[0].nodes["active"] == 2
    not_ready = newcomer.model_copy(update={"state": "unknown"})
    p = run(snapshot([node("a"), not_ready], sessions("a", 4), machines), pool(min=2))
    assert p.pools[0].nodes["joining"] == 1 and p.pools[0].nodes["active"] == 1


# ---------------------------------------------------------------- what is never touched


def test_unowned_nodes_are_never_touched() -> None:
    """No pool label: never paused, drained or removed, whatever their state."""
    strangers = [
        node("manager", pool_name=None, role="manager"),
        node("idle-1", pool_name=None),
        node("idle-2", pool_name=None),
        node("dead", pool_name=None, ready="down"),
        node("theirs", pool_name=None, availability="pause"),
        node("other-pool", pool_name="batch"),
        node("other-draining", pool_name="batch", state="draining",
             extra={L.DRAINING_AT: ago(60)}),
    ]  # fmt: skip
    nodes = [node("a"), node("b"), *strangers]
    memory = LONG_AGO
    p = run(snapshot(nodes, machines=[machine("a"), machine("b")]), pool(min=0), memory)
    touched = {getattr(a, "hostname", None) for a in p.actions}
    assert touched <= {"a", "b"}, touched
    assert on(p, "pause_node")  # the test can see a pause when one is due


def test_held_nodes_are_left_alone() -> None:
    nodes = [node("a"), node("held", availability="drain")]
    p = run(snapshot(nodes, sessions("a", 1)), pool())
    assert kinds(p) == []
    assert "held paused or drained by someone else" in reasons(p)


def test_disabled_pool_does_nothing() -> None:
    p = run(snapshot([node("a")], sessions(None, 30, state="pending")), pool(enabled=False))
    assert kinds(p) == []
    assert p.decisions[0].outcome == "disabled"


def test_restart_rebuilds_from_the_snapshot() -> None:
    """Without memory, a restarted sidecar continues a scale-in from the labels alone."""
    nodes = [node("a"), paused("p", minutes=30), draining("d", 5)]
    p = run(snapshot(nodes, sessions("a", 1)), pool(), memory=None)
    assert kinds(p) == ["drain_node", "remove_node", "terminate_instance"]
    assert hosts(p, "drain_node") == ["p"] and hosts(p, "remove_node") == ["d"]
    assert not on(p, "launch_nodes") and not on(p, "pause_node")


def test_actions_round_trip_json() -> None:
    nodes = [node("a"), paused("p", minutes=30), draining("d", 5), node("x", ready="down")]
    p = run(snapshot(nodes, sessions("a", 4) + sessions(None, 7, state="pending")), pool())
    assert type(p).model_validate_json(p.model_dump_json()) == p
    assert kinds(p) == ["resume_node", "launch_nodes", "remove_node", "terminate_instance"]
    assert all(isinstance(a, RemoveNode) for a in on(p, "remove_node"))


def test_a_newcomer_is_not_paused_in_the_pass_that_labels_it() -> None:
    # A pause and the newcomer's `state=active` label in one plan would leave the node
    # paused but labelled active: "paused by someone else", never drained, paid forever.
    snap = snapshot(
        [node("a"), node("b", pool_name=None)],
        sessions("a", 1),
        [machine("a"), machine("b", age=timedelta(minutes=3))],
    )
    memory = PoolMemory(unneeded_since=T0 - timedelta(minutes=20))
    p = run(snap, pool(min=1, headroom={"seats": 0}), memory)
    assert [(a.kind, a.hostname) for a in p.actions] == [("label_node", "b")]
    assert "a node just joined: scale-in waits until it is labelled" in p.decisions[0].reasons
    # once labelled, the next pass pauses the emptiest node: the newcomer, not the busy one
    labelled = snapshot(
        [node("a"), node("b")],
        sessions("a", 1),
        [machine("a"), machine("b", age=timedelta(minutes=3))],
    )
    p = run(labelled, pool(min=1, headroom={"seats": 0}), memory)
    assert [(a.kind, a.hostname) for a in p.actions] == [("pause_node", "b")]


# ---------------------------------------------------------------- packing


def test_a_node_holding_sessions_is_paused_to_pack_new_ones_elsewhere() -> None:
    """Swarm would spread new sessions onto the emptier node and keep both alive: pausing
    it sends them to the fuller one while its own session runs to its end."""
    nodes = [node("a"), node("b")]
    sess = sessions("a", 3) + sessions("b", 1, start=10)
    p = run(snapshot(nodes, sess), pool(headroom={"seats": 1}), memory=LONG_AGO)
    assert hosts(p, "pause_node") == ["b"]
    (action,) = on(p, "pause_node")
    assert "it empties while 1 session(s) end" in action.reason
    assert not on(p, "drain_node")


def test_packing_keeps_the_seats_wanted_at_once() -> None:
    nodes = [node("a"), node("b")]
    sess = sessions("a", 3) + sessions("b", 2, start=10)
    # pausing b would leave 1 free seat on a: 2 are wanted at once
    p = run(snapshot(nodes, sess), pool(headroom={"seats": 2}), memory=LONG_AGO)
    assert not on(p, "pause_node")
    assert p.memory.pools[POOL].unneeded_since is None


ARRIVALS = {"arrivals": Signal.model_validate({"influx": {"query": "SELECT 1"}})}


def test_an_empty_node_the_reserve_needs_stays() -> None:
    headroom = {"signal": "arrivals", "node_ready_time": "2m"}  # 2/min -> 4 seats
    nodes = [node("a"), node("b")]
    snap = snapshot(nodes, sessions("a", 4), signals={"arrivals": 2.0})
    p = run(snap, pool(headroom=headroom), memory=LONG_AGO, signals=ARRIVALS)
    assert not on(p, "pause_node")
    quiet = snapshot(nodes, sessions("a", 4), signals={"arrivals": 0.0})
    p = run(quiet, pool(headroom=headroom), memory=LONG_AGO, signals=ARRIVALS)
    assert hosts(p, "pause_node") == ["b"]
