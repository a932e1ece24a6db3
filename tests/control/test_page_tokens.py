"""One page-token convention on every List RPC that pages: a token carries the fingerprint of the
filters it was made under, and a token used under other filters is INVALID_ARGUMENT naming
page_token (not a page of some other query). One paged RPC per service."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.control.rpcs import implemented_rpcs
from vigil.control.request_checks import api_token
from vigil.storage.repositories.base import encode_page_token

OTHER = str(uuid.uuid4())
# service, RPC, filters of the page the token came from (the request itself has none)
PAGED = [
    ("vigil.v1.AlertService", "ListAlerts", {"camera_ids": [OTHER]}),
    ("vigil.v1.CameraService", "ListSites", {"name_contains": "elsewhere"}),
    ("vigil.v1.EventService", "ListEvents", {"camera_ids": [OTHER]}),
    ("vigil.v1.MediaService", "ListMedia", {"camera_ids": [OTHER]}),
    ("vigil.v1.NodeService", "ListNodes", {"states": [1]}),
    ("vigil.v1.PersonService", "ListPersons", {"query": "elsewhere"}),
    ("vigil.v1.RuleService", "ListAlertRules", {"camera_ids": [OTHER]}),
    ("vigil.v1.WatchlistService", "ListWatchlists", {"is_active": True}),
]


def test_every_paged_rpc_is_covered_one_per_service():
    paged_services = {r.service for r in implemented_rpcs() if "page_token" in r.request_type.DESCRIPTOR.fields_by_name}
    assert paged_services == {service for service, _, _ in PAGED}


@pytest.mark.parametrize("service, method, filters", PAGED, ids=[m for _, m, _ in PAGED])
async def test_a_token_of_other_filters_is_refused_naming_page_token(channel, as_role, service, method, filters):
    rpc = next(r for r in implemented_rpcs(service) if r.name == method)
    # a well-formed keyset, so only the fingerprint can tell the token belongs to another query
    token = api_token(rpc.request_type(**filters), encode_page_token(["2020-01-01T00:00:00+00:00", OTHER]))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await rpc.invoke(rpc.callable(channel), as_role("admin"), rpc.request_type(page_size=1, page_token=token))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("page_token: is not a page token of this query"), refused.value.details()
