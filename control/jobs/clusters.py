"""Job "cluster_consolidation": merge unknown-face clusters whose representative faces match within
their model version's threshold (cosine similarity >= model_versions.match_threshold).

Ingest puts a face into the nearest cluster when it matches, but two clusters can start apart and
later converge as better representatives arrive. Matching pairs are grouped transitively; each
group merges into its largest cluster (then the oldest), exactly as PersonService.MergeClusters
does: events move, the sources become MERGED with merged_into_cluster_id set, and the placeholder
persons holding their faces are merged so the faces end up together.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from vigil.logs import get_logger
from vigil.storage.db import acting_as
from vigil.storage.repositories.audit import AuditLogRepository
from vigil.storage.repositories.faces import ClusterRepository
from vigil.storage.repositories.persons import PersonRepository

log = get_logger("vigil.control.jobs.clusters")

MAX_PAIRS = 10_000  # per run; the next run continues


def groups_of(pairs: list[tuple[UUID, UUID]]) -> list[set[UUID]]:
    """Connected components of the match graph (union-find)."""
    parent: dict[UUID, UUID] = {}

    def root(x: UUID) -> UUID:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
    components: dict[UUID, set[UUID]] = {}
    for x in list(parent):
        components.setdefault(root(x), set()).add(x)
    return [c for c in components.values() if len(c) > 1]


async def consolidate_clusters(app) -> dict[str, Any]:
    async with app.pool.connection() as conn:
        pairs = await ClusterRepository(conn).matching_pairs(MAX_PAIRS)
    merged = 0
    merges = []
    for group in groups_of(pairs):
        async with acting_as(app.pool, user_id=None, role="super_admin") as conn:
            clusters = ClusterRepository(conn)
            active = await clusters.active_by_size(group)
            if len(active) < 2:  # merged or reviewed meanwhile
                continue
            target, sources = active[0][0], [cluster_id for cluster_id, _ in active[1:]]
            await clusters.merge(target, sources)
            holders = list(dict.fromkeys(holder for _, holder in active if holder is not None))
            if len(holders) > 1:
                await PersonRepository(conn).merge(holders[0], holders[1:])
            await AuditLogRepository(conn).record("cluster.consolidate", "cluster", resource_id=target, details={
                "source_cluster_ids": [str(s) for s in sources], "by": "job cluster_consolidation"})
        merged += len(sources)
        merges.append({"target": str(target), "sources": [str(s) for s in sources]})
        log.info("clusters consolidated", target=str(target), sources=[str(s) for s in sources])
    return {"pairs": len(pairs), "merged": merged, "merges": merges[:20]}
