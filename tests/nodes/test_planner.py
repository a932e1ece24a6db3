"""The assignment planner's rules, without a database."""

from __future__ import annotations

import uuid

from vigil.control.nodes.planner import plan_assignments
from vigil.storage.repositories.nodes import NodeLoad


def ids(n: int) -> list[uuid.UUID]:
    return sorted(uuid.uuid4() for _ in range(n))


def node(state: str = "active", capacity: int = 10) -> NodeLoad:
    return NodeLoad(uuid.uuid4(), state, capacity)


def after(current: dict, plan) -> dict:
    result = dict(current)
    for camera, target in plan.moves.items():
        if target is None:
            result.pop(camera, None)
        else:
            result[camera] = target
    return result


def loads(assignment: dict) -> dict:
    counts: dict = {}
    for n in assignment.values():
        counts[n] = counts.get(n, 0) + 1
    return counts


def test_fills_the_least_loaded_node_and_never_exceeds_capacity():
    a, b = node(capacity=3), node(capacity=2)
    cameras = ids(7)
    plan = plan_assignments([a, b], {}, cameras)
    result = after({}, plan)
    assert loads(result) == {a.id: 3, b.id: 2}
    assert len(plan.unplaced) == 2 and set(plan.unplaced) <= set(cameras)


def test_balances_by_utilisation_across_sizes():
    big, small = node(capacity=100), node(capacity=10)
    result = after({}, plan_assignments([big, small], {}, ids(22)))
    assert loads(result) == {big.id: 20, small.id: 2}


def test_existing_assignments_stay_put():
    a, b = node(), node()
    cameras = ids(4)
    current = {cameras[0]: a.id, cameras[1]: a.id, cameras[2]: a.id}
    plan = plan_assignments([a, b], current, cameras)
    assert plan.moves == {cameras[3]: b.id}
    assert not plan_assignments([a, b], after(current, plan), cameras)  # a settled fleet: nothing to do


def test_streams_leave_draining_offline_and_vanished_nodes():
    live, draining, offline = node(), node("draining"), node("offline")
    gone = uuid.uuid4()
    cameras = ids(3)
    current = {cameras[0]: draining.id, cameras[1]: offline.id, cameras[2]: gone}
    plan = plan_assignments([live, draining, offline], current, cameras)
    assert plan.moves == {c: live.id for c in cameras}


def test_no_room_unassigns_rather_than_leaving_streams_on_a_dead_node():
    offline = node("offline")
    camera = uuid.uuid4()
    plan = plan_assignments([offline], {camera: offline.id}, [camera])
    assert plan.moves == {camera: None} and plan.unplaced == (camera,)


def test_cameras_no_longer_assignable_are_removed():
    a = node()
    kept, dropped = ids(2)
    plan = plan_assignments([a], {kept: a.id, dropped: a.id}, [kept])
    assert plan.moves == {dropped: None}


def test_a_smaller_capacity_moves_the_latest_cameras_away():
    a, b = node(capacity=2), node(capacity=5)
    cameras = ids(4)
    current = {c: a.id for c in cameras}
    result = after(current, plan_assignments([a, b], current, cameras))
    assert [result[c] for c in cameras] == [a.id, a.id, b.id, b.id]
