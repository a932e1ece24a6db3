"""plan_assignments(nodes, current, assignable) → the assignment changes that make the fleet right.

A pure function (no I/O), so its rules are tested without a database:
  * only ACTIVE nodes run streams: streams of DRAINING and OFFLINE nodes (and of nodes that no
    longer exist) are moved;
  * a node never runs more than capacity_streams (after a re-registration with a smaller
    capacity, the streams latest in the `assignable` order leave first);
  * existing assignments that break no rule stay where they are (a moved stream restarts);
  * each stream to place goes to the ACTIVE node with the lowest utilisation (assigned / capacity,
    then fewer streams, then id), so nodes fill evenly whatever their sizes;
  * a camera no longer assignable (inactive, no URL, deleted) is unassigned; a stream for which no
    node has room stays unassigned until one has.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from vigil.storage.repositories.nodes import NodeLoad


@dataclass(frozen=True)
class AssignmentPlan:
    moves: dict[UUID, UUID | None] = field(default_factory=dict)  # camera → new node (None: unassigned)
    unplaced: tuple[UUID, ...] = ()  # assignable cameras no node has room for

    def __bool__(self) -> bool:
        return bool(self.moves)


def plan_assignments(nodes: Sequence[NodeLoad], current: Mapping[UUID, UUID],
                     assignable: Sequence[UUID]) -> AssignmentPlan:
    """`current`: camera → node now; `assignable`: cameras that should run, in priority order
    (earlier ones keep their place first when a node is over capacity)."""
    active = {n.id: n for n in nodes if n.state == "active"}
    kept: dict[UUID, list[UUID]] = {node_id: [] for node_id in active}
    to_place: list[UUID] = []
    for camera in assignable:
        node_id = current.get(camera)
        if node_id in active and len(kept[node_id]) < active[node_id].capacity_streams:
            kept[node_id].append(camera)
        else:
            to_place.append(camera)

    # (utilisation, load, id) per node with room: the least utilised first
    heap = [(len(cams) / active[n].capacity_streams, len(cams), n) for n, cams in kept.items()
            if len(cams) < active[n].capacity_streams]
    heapq.heapify(heap)
    target: dict[UUID, UUID | None] = {}
    unplaced = []
    for camera in to_place:
        if not heap:
            unplaced.append(camera)
            continue
        _, load, node_id = heapq.heappop(heap)
        target[camera] = node_id
        load += 1
        capacity = active[node_id].capacity_streams
        if load < capacity:
            heapq.heappush(heap, (load / capacity, load, node_id))

    moves: dict[UUID, UUID | None] = {}
    wanted = set(assignable)
    for camera in current:
        if camera not in wanted:
            moves[camera] = None
    for camera in to_place:
        new = target.get(camera)
        if current.get(camera) != new:
            moves[camera] = new
    return AssignmentPlan(moves, tuple(unplaced))
