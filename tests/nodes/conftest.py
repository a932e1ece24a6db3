"""Fixtures of the node suite (the control plane, its stubs and keys: tests/fixtures/control.py): a
second replica with a short node lease, and a fleet made of the test's own nodes."""

from __future__ import annotations

import pytest

from tests.fixtures.control import replica
from tests.nodes.builders import SHORT_HEARTBEAT_S, SHORT_LEASE_S


@pytest.fixture
def own_fleet(db):
    """Nodes of earlier tests and suites leave the fleet: each test's streams go only to its own
    nodes. Their records stay (OFFLINE), as a node that stopped would leave them."""
    db.execute("UPDATE pipeline_nodes SET state = 'offline' WHERE state <> 'offline'")


@pytest.fixture(scope="module")
async def short_lease(stack, settings):
    """A second replica whose nodes get a short lease; (NodeService stub, app)."""
    async with replica(stack, settings, node_lease_s=SHORT_LEASE_S,
                       node_heartbeat_interval_s=SHORT_HEARTBEAT_S) as found:
        yield found
