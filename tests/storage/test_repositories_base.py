"""Shared repository plumbing: page tokens, page sizes, update allow-lists, and how a call
behaves inside and outside a caller's transaction."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from psycopg import pq

from tests.storage.builders import unique
from vigil.errors import AlreadyExists, InvalidArgument
from vigil.storage.repositories.base import (
    BY_CREATED_AT,
    BY_NAME,
    MAX_PAGE_SIZE,
    check_updatable,
    decode_page_token,
    encode_page_token,
    page_limit,
)
from vigil.storage.repositories.sites import SiteRepository


def _token(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_page_token_round_trip_is_opaque_base64url():
    key = (datetime(2026, 11, 22, 1, 2, 3, 456789, tzinfo=UTC), uuid.uuid4())
    token = encode_page_token(key)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_page_token(token, BY_CREATED_AT) == key
    assert decode_page_token(encode_page_token(("Zürich cam", key[1])), BY_NAME) == ("Zürich cam", key[1])


@pytest.mark.parametrize("token", [
    "%%%",  # not base64
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
    _token({"created_at": "2026-01-01"}),  # not a list
    _token(["2026-11-22T01:02:03+00:00"]),  # too short
    _token(["2026-11-22T01:02:03+00:00", str(uuid.uuid4()), "extra"]),  # too long
    _token(["yesterday", str(uuid.uuid4())]),  # not a timestamp
    _token(["2026-11-22T01:02:03", str(uuid.uuid4())]),  # a timestamp without zone
    _token(["2026-11-22T01:02:03+00:00", "not-a-uuid"]),
    _token([20261122, str(uuid.uuid4())]),  # not a string
])
def test_malformed_page_token_names_page_token(token):
    with pytest.raises(InvalidArgument) as refused:
        decode_page_token(token, BY_CREATED_AT)
    assert refused.value.field == "page_token"


def test_page_size_default_cap_and_refusal():
    assert page_limit(0) == 50
    assert page_limit(7) == 7
    assert page_limit(10**6) == MAX_PAGE_SIZE
    for bad in (-1, "10", 2.5):
        with pytest.raises(InvalidArgument) as refused:
            page_limit(bad)
        assert refused.value.field == "page_size"


def test_updates_are_limited_to_the_allow_list():
    check_updatable("site", {"name": "x"}, ("name", "address"))
    with pytest.raises(InvalidArgument) as refused:
        check_updatable("site", {"name": "x", "id": uuid.uuid4()}, ("name", "address"))
    assert refused.value.field == "id" and "address, name" in refused.value.message


async def test_outside_a_transaction_each_call_commits_or_leaves_nothing(pool):
    """Without a caller's transaction a call is its own transaction: committed on success, rolled
    back on error, and the connection is idle again either way."""
    async with pool.connection() as conn:
        sites = SiteRepository(conn)
        site = await sites.create(unique("committed"))
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        try:
            with pytest.raises(AlreadyExists):
                await sites.create(site.name)
            assert conn.info.transaction_status == pq.TransactionStatus.IDLE
            async with pool.connection() as other:  # visible to another session: it was committed
                assert (await SiteRepository(other).get(site.id)).name == site.name
        finally:
            await sites.delete(site.id)
