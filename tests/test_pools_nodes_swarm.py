"""The node actuator against a real Swarm: the lifecycle of a pool node, and its refusals."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest

from autoscaler.actuate.nodes import NodeActuator
from autoscaler.decide.plan_types import (
    DrainNode,
    LabelNode,
    PauseNode,
    RemoveNode,
    ResumeNode,
)
from autoscaler.decide.pools import labels as L
from autoscaler.lab.engines import SwarmCluster
from autoscaler.lab.image import BUSYBOX_IMAGE
from autoscaler.lab.sessions import session_labels
from autoscaler.rules.pools import PoolPolicy
from autoscaler.rules.schema import Policies
from tests.fixtures_swarm import wait_until

pytestmark = pytest.mark.real
POOL = "web"
AT = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def pool_node(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient
) -> Iterator[dict[str, str]]:
    """A worker booted for the test (so removing it harms nobody), removed afterwards."""
    name = f"pn{secrets.token_hex(3)}"
    worker = swarm_cluster.add_worker(name)
    try:
        yield {"node_id": worker.node_id or "", "hostname": name, "pool": POOL}
    finally:
        swarm_cluster.remove_worker(name)


def node(client: docker.DockerClient, node_id: str) -> Any:
    return client.api.inspect_node(node_id)


def labels(client: docker.DockerClient, node_id: str) -> dict[str, str]:
    return dict(node(client, node_id)["Spec"].get("Labels") or {})


def availability(client: docker.DockerClient, node_id: str) -> str:
    return str(node(client, node_id)["Spec"]["Availability"])


def session_on(client: docker.DockerClient, hostname: str, user: str | None = "alice") -> str:
    """A ShinyProxy-like session service pinned to one node, running."""
    proxy = secrets.token_hex(4)
    tmpl = {
        "ContainerSpec": {
            "Image": BUSYBOX_IMAGE,
            "Command": ["sleep", "3600"],
            "Labels": session_labels(
                proxy_id=proxy, spec_id="euler", user_id=user, instance="t", created_at=AT
            ),
        },
        "Placement": {"Constraints": [f"node.hostname=={hostname}"]},
        "RestartPolicy": {"Condition": "none"},
    }
    sid = str(client.api.create_service(tmpl, name=f"sp-service-{proxy}-0")["ID"])

    def running() -> bool:
        tasks = client.api.tasks(filters={"service": sid})
        return any(t["Status"]["State"] == "running" for t in tasks)

    wait_until(running, timeout=60, what="session running")
    return sid


def running_tasks(client: docker.DockerClient, sid: str) -> int:
    tasks = client.api.tasks(filters={"service": sid})
    return sum(1 for t in tasks if t["Status"]["State"] == "running")


def test_lifecycle_never_drains_a_session(
    swarm_client: docker.DockerClient, pool_node: dict[str, str]
) -> None:
    act = NodeActuator(swarm_client)
    nid = pool_node["node_id"]
    # a newcomer joins the pool
    joined = act.execute(
        LabelNode(
            **pool_node, labels={L.POOL: POOL, L.STATE: "active", L.INSTANCE: "i-1"}, reason="t"
        )
    )
    assert joined.ok, joined.message
    assert labels(swarm_client, nid)[L.POOL] == POOL
    sid = session_on(swarm_client, pool_node["hostname"])

    # drain before pause: refused
    early = act.execute(DrainNode(**pool_node, reason="t", at=AT))
    assert not early.ok and "drain follows pause" in early.message

    paused = act.execute(PauseNode(**pool_node, reason="t", at=AT))
    assert paused.ok, paused.message
    assert availability(swarm_client, nid) == "pause"
    assert labels(swarm_client, nid)[L.STATE] == "paused"
    assert labels(swarm_client, nid)[L.PAUSED_AT] == "2024-05-06T12:00:00Z"
    assert running_tasks(swarm_client, sid) == 1  # the session keeps running

    # a user session there: neither drained nor removed
    refused = act.execute(DrainNode(**pool_node, reason="t", at=AT))
    assert not refused.ok and "holds 1 user session" in refused.message
    assert availability(swarm_client, nid) == "pause"
    removal = act.execute(RemoveNode(**pool_node, reason="t"))
    assert not removal.ok and "neither down nor drained" in removal.message
    assert running_tasks(swarm_client, sid) == 1

    # resume and pause again: an alert of the last wait counts for no later one
    marks = {L.NOTIFIED_AT: L.stamp(AT), L.DELIVERED_AT: L.stamp(AT)}
    assert act.execute(LabelNode(**pool_node, labels=marks, reason="t")).ok
    assert act.execute(ResumeNode(**pool_node, reason="t")).ok
    assert availability(swarm_client, nid) == "active"
    assert not {L.PAUSED_AT, *marks} & set(labels(swarm_client, nid))
    shared = session_on(swarm_client, pool_node["hostname"], user=None)  # pre-initialised
    assert act.execute(PauseNode(**pool_node, reason="t", at=AT)).ok

    # the session ends, but the pre-initialised container is there: still not drained
    swarm_client.api.remove_service(sid)
    wait_until(lambda: act.user_sessions(nid) == 1, timeout=30, what="session gone")
    kept = act.execute(DrainNode(**pool_node, reason="t", at=AT))
    assert not kept.ok and "holds 1 user session(s) or pre-initialised" in kept.message

    # ShinyProxy removes it: drain, then remove
    swarm_client.api.remove_service(shared)
    wait_until(lambda: act.user_sessions(nid) == 0, timeout=30, what="container gone")
    drained = act.execute(DrainNode(**pool_node, reason="t", at=AT))
    assert drained.ok, drained.message
    assert availability(swarm_client, nid) == "drain"
    assert labels(swarm_client, nid)[L.STATE] == "draining"
    removed = act.execute(RemoveNode(**pool_node, reason="t"))
    assert removed.ok, removed.message
    assert nid not in {n["ID"] for n in swarm_client.api.nodes()}


def ending_rules(allow: bool) -> Policies:
    scale_in = {"allow_ending_sessions": allow, "ending_notice": "5m"}
    pool = PoolPolicy.model_validate(
        {"provider": "local", "max": 3, "seats_per_node": 4, "scale_in": scale_in}
    )
    return Policies(pools={POOL: pool})


def test_ending_sessions_needs_the_flag_the_alert_and_the_rules(
    swarm_client: docker.DockerClient, pool_node: dict[str, str]
) -> None:
    act = NodeActuator(swarm_client)
    assert act.execute(LabelNode(**pool_node, labels={L.POOL: POOL}, reason="t")).ok
    sid = session_on(swarm_client, pool_node["hostname"])
    # a pre-initialised container: users may hold its seats, unseen from the Swarm
    spare = session_on(swarm_client, pool_node["hostname"], user=None)
    assert act.user_sessions(pool_node["node_id"]) == 2
    assert act.execute(PauseNode(**pool_node, reason="t", at=AT)).ok
    assert not act.execute(DrainNode(**pool_node, reason="t", at=AT)).ok

    def drain(actuator: NodeActuator) -> str:
        result = actuator.execute(DrainNode(**pool_node, reason="t", at=AT, end_sessions=True))
        assert not result.ok
        assert availability(swarm_client, pool_node["node_id"]) == "pause"
        return result.message

    assert drain(act).endswith("no alert was raised for them")
    alerted = {L.NOTIFIED_AT: L.stamp(AT - timedelta(minutes=4))}
    assert act.execute(LabelNode(**pool_node, labels=alerted, reason="alert raised")).ok
    assert drain(act).endswith("the alert raised at 11:56:00Z was not delivered")
    stale = {L.DELIVERED_AT: L.stamp(AT - timedelta(minutes=30))}  # an earlier alert's
    assert act.execute(LabelNode(**pool_node, labels=stale, reason="t")).ok
    assert drain(act).endswith("was not delivered")
    delivered = {L.DELIVERED_AT: L.stamp(AT - timedelta(minutes=3))}
    assert act.execute(LabelNode(**pool_node, labels=delivered, reason="alert delivered")).ok
    forbidding = NodeActuator(swarm_client, lambda: ending_rules(False))
    assert drain(forbidding).endswith(f"pool {POOL} does not allow ending sessions")
    allowing = NodeActuator(swarm_client, lambda: ending_rules(True))
    assert drain(allowing).endswith("not drained before 12:02:00Z")  # 5m from delivery at 11:57
    assert running_tasks(swarm_client, sid) == 1
    later = DrainNode(**pool_node, reason="t", at=AT + timedelta(minutes=2), end_sessions=True)
    ended = allowing.execute(later)
    assert ended.ok and "ending 2 session(s)" in ended.message
    wait_until(lambda: running_tasks(swarm_client, sid) == 0, timeout=30, what="session ended")
    assert running_tasks(swarm_client, spare) == 0


def test_unowned_nodes_are_never_touched(swarm_client: docker.DockerClient) -> None:
    act = NodeActuator(swarm_client)
    checked = 0
    for raw in swarm_client.api.nodes():
        if raw["Spec"].get("Labels", {}).get(L.POOL):
            continue
        checked += 1
        target = {"node_id": raw["ID"], "hostname": raw["Description"]["Hostname"], "pool": POOL}
        before = (raw["Spec"], raw["Version"]["Index"])
        for action in (
            PauseNode(**target, reason="t", at=AT),
            ResumeNode(**target, reason="t"),
            DrainNode(**target, reason="t", at=AT, end_sessions=True),
            RemoveNode(**target, reason="t"),
            LabelNode(**target, labels={L.STATE: "active"}, reason="t"),
        ):
            result = act.execute(action)
            assert not result.ok, (action.kind, result.message)
        after = swarm_client.api.inspect_node(raw["ID"])
        assert (after["Spec"], after["Version"]["Index"]) == before
        if raw["Spec"]["Role"] == "manager":
            claim = act.execute(LabelNode(**target, labels={L.POOL: POOL}, reason="t"))
            assert not claim.ok and "manager" in claim.message
    assert checked >= 2  # the manager and the shared workers


def test_a_session_restarting_after_its_delay_is_not_drained(
    swarm_client: docker.DockerClient, pool_node: dict[str, str]
) -> None:
    """A session container that exited gets a new task on the node at once, desired state
    ``ready`` until its restart delay is over: it is the user's session, starting."""
    act = NodeActuator(swarm_client)
    assert act.execute(LabelNode(**pool_node, labels={L.POOL: POOL}, reason="t")).ok
    proxy = secrets.token_hex(4)
    tmpl = {
        "ContainerSpec": {
            "Image": BUSYBOX_IMAGE,
            "Command": ["sh", "-c", "sleep 1; exit 1"],
            "Labels": session_labels(
                proxy_id=proxy, spec_id="euler", user_id="carol", instance="t", created_at=AT
            ),
        },
        "Placement": {"Constraints": [f"node.hostname=={pool_node['hostname']}"]},
        "RestartPolicy": {"Condition": "any", "Delay": 600 * 10**9},
    }
    sid = swarm_client.api.create_service(tmpl, name=f"sp-service-{proxy}-0")["ID"]

    def restarting() -> list[dict[str, Any]]:
        tasks = swarm_client.api.tasks(filters={"service": sid})
        return [t for t in tasks if t["DesiredState"] == "ready" and t.get("NodeID")]

    waiting = wait_until(restarting, timeout=60, what="a restart waiting out its delay")
    assert waiting[0]["NodeID"] == pool_node["node_id"]
    assert act.execute(PauseNode(**pool_node, reason="t", at=AT)).ok
    refused = act.execute(DrainNode(**pool_node, reason="t", at=AT))
    assert not refused.ok and "holds 1 user session" in refused.message
    assert availability(swarm_client, pool_node["node_id"]) == "pause"
    assert act.user_sessions(pool_node["node_id"]) == 1
    assert [t["ID"] for t in restarting()] == [waiting[0]["ID"]]


def test_a_manager_is_never_paused_drained_or_removed(
    swarm_cluster: SwarmCluster, swarm_client: docker.DockerClient
) -> None:
    """Even with the pool's label (set by hand, or a pool worker promoted since)."""
    act = NodeActuator(swarm_client)
    nid = swarm_cluster.manager.node_id or ""
    target = {"node_id": nid, "hostname": swarm_cluster.manager.name, "pool": POOL}
    raw = node(swarm_client, nid)
    assert raw["Spec"]["Role"] == "manager"
    spec = {**raw["Spec"], "Labels": {**raw["Spec"].get("Labels", {}), L.POOL: POOL}}
    swarm_client.api.update_node(nid, raw["Version"]["Index"], spec)
    try:
        for action in (
            PauseNode(**target, reason="t", at=AT),
            DrainNode(**target, reason="t", at=AT),
            RemoveNode(**target, reason="t"),
        ):
            before = node(swarm_client, nid)
            if isinstance(action, DrainNode | RemoveNode):  # as if paused, then drained
                wanted = "pause" if isinstance(action, DrainNode) else "drain"
                labelled = {**before["Spec"]["Labels"], L.STATE: "paused"}
                spec = {**before["Spec"], "Availability": wanted, "Labels": labelled}
                swarm_client.api.update_node(nid, before["Version"]["Index"], spec)
                before = node(swarm_client, nid)
            result = act.execute(action)
            assert not result.ok, (action.kind, result.message)
            assert "is a manager" in result.message
            after = node(swarm_client, nid)
            assert (after["Spec"], after["Version"]) == (before["Spec"], before["Version"])
    finally:
        raw = node(swarm_client, nid)
        kept = {
            k: v for k, v in raw["Spec"].get("Labels", {}).items() if k not in (L.POOL, L.STATE)
        }
        spec = {**raw["Spec"], "Labels": kept, "Availability": "active"}
        swarm_client.api.update_node(nid, raw["Version"]["Index"], spec)
    assert nid in {n["ID"] for n in swarm_client.api.nodes()}


def test_a_node_removed_by_hand_meanwhile_counts_as_removed(
    swarm_client: docker.DockerClient, pool_node: dict[str, str]
) -> None:
    """The removal succeeds (so the pass goes on to terminate the machine); the other
    actions on a node that is gone are refused."""
    act = NodeActuator(swarm_client)
    nid = pool_node["node_id"]
    assert act.execute(LabelNode(**pool_node, labels={L.POOL: POOL}, reason="t")).ok
    assert act.execute(PauseNode(**pool_node, reason="t", at=AT)).ok
    assert act.execute(DrainNode(**pool_node, reason="t", at=AT)).ok
    swarm_client.api.remove_node(nid, force=True)  # an operator: docker node rm --force
    assert nid not in {n["ID"] for n in swarm_client.api.nodes()}

    removed = act.execute(RemoveNode(**pool_node, reason="drained"))
    assert removed.ok, removed.message
    assert removed.message == f"{pool_node['hostname']} already left the Swarm"
    resumed = act.execute(ResumeNode(**pool_node, reason="t"))
    assert not resumed.ok and "not found" in resumed.message


def test_label_refusals(swarm_client: docker.DockerClient, pool_node: dict[str, str]) -> None:
    act = NodeActuator(swarm_client)
    other = {**pool_node, "pool": "batch"}
    assert act.execute(LabelNode(**other, labels={L.POOL: "batch"}, reason="t")).ok
    stolen = act.execute(LabelNode(**pool_node, labels={L.POOL: POOL}, reason="t"))
    assert not stolen.ok and "belongs to pool batch" in stolen.message
    foreign = act.execute(LabelNode(**other, labels={"com.example": "x"}, reason="t"))
    assert not foreign.ok and "only autoscaler.* labels" in foreign.message
    wrong_name = act.execute(PauseNode(**{**other, "hostname": "nope"}, reason="t", at=AT))
    assert not wrong_name.ok and "not nope" in wrong_name.message


def updates_of(client: docker.DockerClient, node_id: str) -> tuple[list[str], Any]:
    """A response hook recording each node update's status and text, to be extended."""
    seen: list[str] = []

    def record(response: Any, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "POST" and f"/nodes/{node_id}/update" in (
            response.request.path_url
        ):
            seen.append(f"{response.status_code} {response.text.strip()[:80]}")

    return seen, record


def test_an_update_out_of_sequence_is_retried_from_a_fresh_read(
    swarm_client: docker.DockerClient, pool_node: dict[str, str]
) -> None:
    """An operator labels the node right after the actuator read it: the pause is refused
    as out of sequence, read again and applied, and the operator's label survives."""
    act = NodeActuator(swarm_client)
    nid = pool_node["node_id"]
    assert act.execute(LabelNode(**pool_node, labels={L.POOL: POOL}, reason="t")).ok
    seen, record = updates_of(swarm_client, nid)

    def operator_labels(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "GET" and request.path_url.endswith(f"/nodes/{nid}") and not seen:
            seen.append("labelled")
            raw = node(swarm_client, nid)
            spec = {**raw["Spec"], "Labels": {**raw["Spec"]["Labels"], "rack": "b"}}
            swarm_client.api.update_node(nid, raw["Version"]["Index"], spec)
        record(response)

    swarm_client.api.hooks["response"].append(operator_labels)
    try:
        paused = act.execute(PauseNode(**pool_node, reason="t", at=AT))
    finally:
        swarm_client.api.hooks["response"].remove(operator_labels)
    assert paused.ok, paused.message
    assert seen[0] == "labelled" and "out of sequence" in seen[2], seen
    assert availability(swarm_client, nid) == "pause"
    assert labels(swarm_client, nid)["rack"] == "b"
    assert labels(swarm_client, nid)[L.STATE] == "paused"


def test_a_session_arriving_between_the_read_and_the_drain_keeps_the_node(
    swarm_client: docker.DockerClient, pool_node: dict[str, str]
) -> None:
    """Right after the actuator counted no session, the node is resumed, gets a session and
    is paused again: the drain is out of sequence, and the fresh read refuses it."""
    act = NodeActuator(swarm_client)
    nid = pool_node["node_id"]
    assert act.execute(LabelNode(**pool_node, labels={L.POOL: POOL}, reason="t")).ok
    assert act.execute(PauseNode(**pool_node, reason="t", at=AT)).ok
    seen, record = updates_of(swarm_client, nid)
    sessions: list[str] = []
    landed: list[bool] = []

    def set_availability(wanted: str) -> None:
        raw = node(swarm_client, nid)
        spec = {**raw["Spec"], "Availability": wanted}
        swarm_client.api.update_node(nid, raw["Version"]["Index"], spec)

    def session_lands(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "GET" and "/tasks" in request.path_url and not landed:
            landed.append(True)  # session_on reads tasks too
            set_availability("active")
            sessions.append(session_on(swarm_client, pool_node["hostname"]))
            set_availability("pause")
            seen.clear()  # only the actuator's own updates from here
        record(response)

    swarm_client.api.hooks["response"].append(session_lands)
    try:
        drained = act.execute(DrainNode(**pool_node, reason="t", at=AT))
    finally:
        swarm_client.api.hooks["response"].remove(session_lands)
    assert seen and "out of sequence" in seen[0], seen
    assert not drained.ok and "holds 1 user session" in drained.message
    assert availability(swarm_client, nid) == "pause"
    assert running_tasks(swarm_client, sessions[0]) == 1
