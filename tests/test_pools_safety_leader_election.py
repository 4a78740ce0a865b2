"""Right after a Swarm leader election every node is in state ``unknown`` until its next
heartbeat reaches the new leader; one that misses it is marked ``down``. A pass in that
moment must not launch machines to replace capacity that is only unreported."""

from __future__ import annotations

from tests.pools_builders import kinds, node, pool, reasons, run, sessions, snapshot


def test_no_launch_while_nodes_that_were_ready_are_in_state_unknown() -> None:
    nodes = [node("a"), node("b"), node("c")]
    load = sessions("a", 3) + sessions("b", 3) + sessions("c", 3)
    policy = pool(headroom={"seats": 2})
    assert "launch_nodes" not in kinds(run(snapshot(nodes, load), policy))
    election = [node(n, ready="unknown") for n in ("a", "b")] + [node("c")]
    p = run(snapshot(election, load), policy)
    assert "launch_nodes" not in kinds(p)
    assert "2 node(s) in state unknown (a Swarm leader election?): no launch" in reasons(p)


def test_nodes_marked_down_are_replaced_as_before() -> None:
    nodes = [node("a", ready="down"), node("b", ready="down"), node("c")]
    load = sessions("c", 3)
    p = run(snapshot(nodes, load), pool(headroom={"seats": 2}))
    assert "launch_nodes" in kinds(p)
    assert "state unknown" not in reasons(p)
