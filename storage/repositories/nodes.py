"""Pipeline nodes (NodeService) and the camera streams assigned to them.

A node's row holds what it reported at registration, its scheduling state, the lease it was told
and the figures of its latest heartbeat. Assignments are written only by the reconciler
(control.nodes.reconciler), which holds an advisory lock while it does; handlers read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from vigil.errors import FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.repositories.base import (
    BY_NAME,
    Page,
    as_uuid,
    columns_of,
    fetch_all,
    fetch_one,
    fetch_page,
    guarded,
)
from vigil.storage.repositories.filters import Filters

BACKENDS = ("deepstream", "portable")
STATES = ("active", "draining", "offline")
MAX_CAPACITY = 10_000

# A node is alive while its last sign of life (registration or heartbeat) is within its lease.
_ALIVE = sql.SQL("GREATEST(registered_at, last_heartbeat_at) + lease >= NOW()")


@dataclass(frozen=True)
class Node:
    id: UUID
    name: str
    hostname: str | None
    backend: str
    capacity_streams: int
    gpus: list[dict[str, Any]]
    cpu: dict[str, Any]
    versions: dict[str, str]
    labels: dict[str, str]
    embedding_model_version: str
    state: str
    lease: timedelta
    registered_at: datetime
    last_heartbeat_at: datetime | None
    stats: dict[str, Any] | None
    streams: list[dict[str, Any]]
    camera_ids: tuple[UUID, ...]  # currently assigned, oldest assignment first
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Node:
        return cls(**{**row, "camera_ids": tuple(row["camera_ids"] or ())})


@dataclass(frozen=True)
class NodeRegistration:
    """What a node reports about itself in RegisterNode (checked by the caller)."""

    id: UUID
    name: str
    hostname: str | None
    backend: str
    capacity_streams: int
    embedding_model_version: str
    gpus: list[dict[str, Any]]
    cpu: dict[str, Any]
    versions: dict[str, str]
    labels: dict[str, str]


@dataclass(frozen=True)
class NodeLoad:
    """A node as the assignment planner sees it."""

    id: UUID
    state: str
    capacity_streams: int


@dataclass(frozen=True)
class AssignedStream:
    """One assignment of a node with what is needed to describe it to the node."""

    camera_id: UUID
    dvr_id: UUID
    site_id: UUID
    rtsp_url: str | None
    fps: int | None
    config: dict[str, Any]
    camera_updated_at: datetime
    dvr_updated_at: datetime

    @property
    def version(self) -> tuple[datetime, datetime]:
        """Changes whenever the camera or its DVR (credentials included) is updated."""
        return self.camera_updated_at, self.dvr_updated_at


_NODE_COLUMNS = columns_of(Node, camera_ids=sql.SQL(
    "ARRAY(SELECT a.camera_id FROM stream_assignments a WHERE a.node_id = pipeline_nodes.id"
    " ORDER BY a.assigned_at, a.camera_id)"))


class NodeRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def register(self, node: NodeRegistration, lease: timedelta) -> Node:
        """Insert or refresh the node (idempotent by id). An OFFLINE node becomes ACTIVE; a DRAINING
        node stays DRAINING; the lease restarts now; stream figures wait for the next heartbeat."""
        if node.backend not in BACKENDS:
            raise InvalidArgument("backend", f"must be one of {', '.join(BACKENDS)}")
        if not 1 <= node.capacity_streams <= MAX_CAPACITY:
            raise InvalidArgument("capacity_streams", f"must be within 1..{MAX_CAPACITY}")
        values = {
            "id": node.id, "name": node.name, "hostname": node.hostname, "backend": node.backend,
            "capacity_streams": node.capacity_streams, "gpus": Jsonb(node.gpus), "cpu": Jsonb(node.cpu),
            "versions": Jsonb(node.versions), "labels": Jsonb(node.labels),
            "embedding_model_version": node.embedding_model_version, "lease": lease,
        }
        reported = [c for c in values if c != "id"]
        query = sql.SQL(
            "INSERT INTO pipeline_nodes ({columns}) VALUES ({placeholders})"
            # a (re)registered node runs nothing yet: the previous run's stream figures are gone
            " ON CONFLICT (id) DO UPDATE SET {updates}, registered_at = NOW(), streams = '[]'::JSONB,"
            " state = CASE WHEN pipeline_nodes.state = 'offline' THEN 'active' ELSE pipeline_nodes.state END"
        ).format(
            columns=sql.SQL(", ").join(map(sql.Identifier, values)),
            placeholders=sql.SQL(", ").join(sql.Placeholder() * len(values)),
            updates=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in reported),
        )
        async with guarded(self.conn, "node", values):
            await self.conn.execute(query, list(values.values()))
        return await self.get(node.id)

    async def get(self, node_id: UUID | str) -> Node:
        node_id = as_uuid("id", node_id)
        node = await fetch_one(self.conn, Node, sql.SQL("SELECT {} FROM pipeline_nodes WHERE id = %s").format(
            _NODE_COLUMNS), (node_id,))
        if node is None:
            raise NotFound("node", node_id)
        return node

    async def exists(self, node_id: UUID | str) -> bool:
        cur = await self.conn.execute("SELECT 1 FROM pipeline_nodes WHERE id = %s", (as_uuid("node_id", node_id),))
        return await cur.fetchone() is not None

    async def list(self, *, states: Iterable[str] | None = None, backends: Iterable[str] | None = None,
                   page_size: int = 0, page_token: str | None = None) -> Page[Node]:
        """Ordered by name. A filter left None (or empty) matches everything."""
        filters = Filters().any("state", states or None).any("backend", backends or None)
        return await fetch_page(self.conn, Node, select=_NODE_COLUMNS, table="pipeline_nodes", filters=filters,
                                keyset=BY_NAME, page_size=page_size, page_token=page_token,
                                resource="node")

    async def count_by_state(self) -> dict[str, int]:
        """How many nodes are in each state (states without nodes are absent)."""
        cur = await self.conn.execute("SELECT state, count(*) AS n FROM pipeline_nodes GROUP BY state")
        return {row["state"]: row["n"] for row in await cur.fetchall()}

    async def heartbeat(self, node_id: UUID | str, stats: dict[str, Any] | None,
                        streams: list[dict[str, Any]]) -> Node:
        """Store the latest figures. The state is not changed: a node marked OFFLINE registers again."""
        node_id = as_uuid("node_id", node_id)
        async with guarded(self.conn, "node"):
            cur = await self.conn.execute(
                "UPDATE pipeline_nodes SET last_heartbeat_at = NOW(), stats = %s, streams = %s WHERE id = %s",
                (None if stats is None else Jsonb(stats), Jsonb(streams), node_id))
        if cur.rowcount == 0:
            raise NotFound("node", node_id)
        return await self.get(node_id)

    async def drain(self, node_id: UUID | str) -> Node:
        node_id = as_uuid("id", node_id)
        await self._set_state(node_id, sql.SQL("'draining'"))
        return await self.get(node_id)

    async def resume(self, node_id: UUID | str) -> Node:
        """DRAINING → ACTIVE while the node is alive, else OFFLINE; ACTIVE and OFFLINE stay as they are."""
        node_id = as_uuid("id", node_id)
        await self._set_state(node_id, sql.SQL(
            "CASE WHEN state <> 'draining' THEN state WHEN {} THEN 'active' ELSE 'offline' END").format(_ALIVE))
        return await self.get(node_id)

    async def _set_state(self, node_id: UUID, expression: sql.Composable) -> None:
        async with guarded(self.conn, "node"):
            cur = await self.conn.execute(
                sql.SQL("UPDATE pipeline_nodes SET state = {} WHERE id = %s").format(expression), (node_id,))
        if cur.rowcount == 0:
            raise NotFound("node", node_id)

    async def delete(self, node_id: UUID | str) -> None:
        """FailedPrecondition unless the node is OFFLINE (it runs nothing then)."""
        node_id = as_uuid("id", node_id)
        async with guarded(self.conn, "node"):
            cur = await self.conn.execute("SELECT state FROM pipeline_nodes WHERE id = %s FOR UPDATE", (node_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound("node", node_id)
            if row["state"] != "offline":
                raise FailedPrecondition(f"node {node_id} is {row['state']}; only an OFFLINE node can be deleted")
            await self.conn.execute("DELETE FROM pipeline_nodes WHERE id = %s", (node_id,))

    async def expire_leases(self) -> list[UUID]:
        """Mark ACTIVE nodes whose lease ran out OFFLINE; their ids. DRAINING nodes keep their state
        (they run nothing, and an operator's drain must survive the node's maintenance restart)."""
        cur = await self.conn.execute(
            sql.SQL(
                "UPDATE pipeline_nodes SET state = 'offline' WHERE state = 'active' AND NOT {} RETURNING id"
            ).format(_ALIVE)
        )
        return [row["id"] for row in await cur.fetchall()]

    async def loads(self) -> list[NodeLoad]:
        return await fetch_all(self.conn, NodeLoad, sql.SQL(
            "SELECT id, state, capacity_streams FROM pipeline_nodes ORDER BY id"))


class StreamAssignmentRepository:
    def __init__(self, conn: psycopg.AsyncConnection):
        self.conn = conn

    async def current(self) -> dict[UUID, UUID]:
        """camera id → node id of every assignment."""
        cur = await self.conn.execute("SELECT camera_id, node_id FROM stream_assignments")
        return {row["camera_id"]: row["node_id"] for row in await cur.fetchall()}

    async def assignable_cameras(self) -> list[UUID]:
        """Cameras a node should run: active, with a stream URL; oldest first (stable planning order)."""
        cur = await self.conn.execute(
            "SELECT id FROM cameras WHERE is_active AND rtsp_url IS NOT NULL AND btrim(rtsp_url) <> ''"
            " ORDER BY created_at, id")
        return [row["id"] for row in await cur.fetchall()]

    async def apply(self, moves: Mapping[UUID, UUID | None]) -> None:
        """Set each camera's node (None: unassigned). A camera deleted meanwhile is skipped."""
        removed = [camera for camera, node in moves.items() if node is None]
        placed = [(camera, node) for camera, node in moves.items() if node is not None]
        async with guarded(self.conn, "stream assignment"):
            if removed:
                await self.conn.execute("DELETE FROM stream_assignments WHERE camera_id = ANY(%s)", (removed,))
            if placed:
                # only cameras and nodes that still exist: a camera deleted since planning is skipped
                await self.conn.execute(
                    "INSERT INTO stream_assignments (camera_id, node_id)"
                    " SELECT p.camera_id, p.node_id FROM unnest(%s::uuid[], %s::uuid[]) AS p(camera_id, node_id)"
                    " JOIN cameras c ON c.id = p.camera_id JOIN pipeline_nodes n ON n.id = p.node_id"
                    " ON CONFLICT (camera_id) DO UPDATE SET node_id = EXCLUDED.node_id, assigned_at = NOW()"
                    " WHERE stream_assignments.node_id <> EXCLUDED.node_id",
                    ([c for c, _ in placed], [n for _, n in placed]))

    async def of_node(self, node_id: UUID | str) -> list[AssignedStream]:
        """The node's streams with their cameras and DVRs."""
        return await fetch_all(self.conn, AssignedStream, sql.SQL(
            "SELECT a.camera_id, c.dvr_id, d.site_id, c.rtsp_url, c.fps, c.config,"
            " c.updated_at AS camera_updated_at, d.updated_at AS dvr_updated_at"
            " FROM stream_assignments a JOIN cameras c ON c.id = a.camera_id JOIN dvrs d ON d.id = c.dvr_id"
            " WHERE a.node_id = %s ORDER BY a.assigned_at, a.camera_id"), (as_uuid("node_id", node_id),))
