"""WatchlistService through a real gRPC channel: CRUD, entries, paging, update masks, errors."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from vigil.api.v1 import common_pb2, person_pb2, person_pb2_grpc, watchlist_pb2_grpc
from vigil.api.v1 import watchlist_pb2 as pb


@pytest.fixture(scope="module")
def stub(channel):
    return watchlist_pb2_grpc.WatchlistServiceStub(channel)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def test_watchlist_round_trip(stub, channel, as_role, db):
    md = as_role("operator")
    created = (await stub.CreateWatchlist(pb.CreateWatchlistRequest(watchlist=pb.Watchlist(
        name=_name("vip"), description="front desk", watch_type=pb.WATCHLIST_TYPE_VIP)), metadata=md)).watchlist
    assert created.id and created.is_active and created.watch_type == pb.WATCHLIST_TYPE_VIP

    got = (await stub.GetWatchlist(pb.GetWatchlistRequest(id=created.id), metadata=md)).watchlist
    assert got == created

    updated = (await stub.UpdateWatchlist(pb.UpdateWatchlistRequest(
        watchlist=pb.Watchlist(id=created.id, description="lobby", is_active=False),
        update_mask=field_mask_pb2.FieldMask(paths=["description", "is_active"])), metadata=md)).watchlist
    assert updated.description == "lobby" and not updated.is_active and updated.name == created.name

    persons = person_pb2_grpc.PersonServiceStub(channel)
    person = (await persons.CreatePerson(person_pb2.CreatePersonRequest(person=person_pb2.Person(
        name="Watched", status=common_pb2.PERSON_STATUS_VIP)), metadata=md)).person
    entry = (await stub.AddWatchlistEntry(pb.AddWatchlistEntryRequest(entry=pb.WatchlistEntry(
        watchlist_id=created.id, person_id=person.id, notes="escort")), metadata=md)).entry
    assert entry.person_id == person.id and entry.notes == "escort"
    again = await _error(stub.AddWatchlistEntry(pb.AddWatchlistEntryRequest(entry=pb.WatchlistEntry(
        watchlist_id=created.id, person_id=person.id)), metadata=md))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS

    assert (await stub.GetWatchlist(pb.GetWatchlistRequest(id=created.id), metadata=md)).watchlist.entry_count == 1
    by_person = await stub.ListWatchlistEntries(pb.ListWatchlistEntriesRequest(person_id=person.id), metadata=md)
    assert [e.id for e in by_person.entries] == [entry.id]

    await stub.RemoveWatchlistEntry(pb.RemoveWatchlistEntryRequest(id=entry.id), metadata=md)
    missing = await _error(stub.RemoveWatchlistEntry(pb.RemoveWatchlistEntryRequest(id=entry.id), metadata=md))
    assert missing.code() == grpc.StatusCode.NOT_FOUND

    audit = db.execute("SELECT action, details->>'api_key_id' FROM audit_logs WHERE resource_id = %s"
                       " AND action LIKE 'watchlist.%%' ORDER BY timestamp", (created.id,)).fetchall()
    assert [a for a, _ in audit] == ["watchlist.create", "watchlist.update", "watchlist.add_entry"]
    assert all(key for _, key in audit)

    await stub.DeleteWatchlist(pb.DeleteWatchlistRequest(id=created.id), metadata=as_role("super_admin"))
    gone = await _error(stub.GetWatchlist(pb.GetWatchlistRequest(id=created.id), metadata=md))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_paging_and_filters(stub, as_role):
    md = as_role("admin")
    tag = uuid.uuid4().hex[:6]
    ids = set()
    for i in range(5):
        reply = await stub.CreateWatchlist(pb.CreateWatchlistRequest(watchlist=pb.Watchlist(
            name=f"page-{tag}-{i}", watch_type=pb.WATCHLIST_TYPE_SUSPECT)), metadata=md)
        ids.add(reply.watchlist.id)
    seen, token = [], ""
    while True:
        page = await stub.ListWatchlists(pb.ListWatchlistsRequest(
            page_size=2, page_token=token, watch_types=[pb.WATCHLIST_TYPE_SUSPECT]), metadata=md)
        seen += [w.id for w in page.watchlists]
        assert all(w.watch_type == pb.WATCHLIST_TYPE_SUSPECT for w in page.watchlists)
        token = page.next_page_token
        if not token:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))


@pytest.mark.parametrize("request_, field", [
    (pb.CreateWatchlistRequest(watchlist=pb.Watchlist(name="x")), "watch_type"),
    (pb.CreateWatchlistRequest(watchlist=pb.Watchlist(name="x" * 300, watch_type=1)), "name"),
    (pb.UpdateWatchlistRequest(watchlist=pb.Watchlist(id=str(uuid.uuid4()), name="y"),
                               update_mask=field_mask_pb2.FieldMask(paths=["colour"])), "update_mask"),
    (pb.UpdateWatchlistRequest(watchlist=pb.Watchlist(id=str(uuid.uuid4()), name="y")), "update_mask"),
    (pb.GetWatchlistRequest(id="not-a-uuid"), "watchlist_id"),
    (pb.ListWatchlistsRequest(page_token="garbage!"), "page_token"),
])
async def test_invalid_input_names_the_field_and_writes_nothing(stub, as_role, db, request_, field):
    before = db.execute("SELECT count(*) FROM watchlists").fetchone()[0]
    method = {pb.CreateWatchlistRequest: stub.CreateWatchlist, pb.UpdateWatchlistRequest: stub.UpdateWatchlist,
              pb.GetWatchlistRequest: stub.GetWatchlist, pb.ListWatchlistsRequest: stub.ListWatchlists}[type(request_)]
    err = await _error(method(request_, metadata=as_role("admin")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.details(), err.details()
    assert db.execute("SELECT count(*) FROM watchlists").fetchone()[0] == before
