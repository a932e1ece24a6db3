"""WatchlistService: watchlists (VIP, blacklist, suspect, custom) and the persons on them."""

from __future__ import annotations

from vigil.api.v1 import watchlist_pb2 as pb
from vigil.api.v1 import watchlist_pb2_grpc
from vigil.control.convert import EnumMap, optional, text, timestamp
from vigil.control.field_mask import masked_changes
from vigil.control.request_checks import api_token, repository_token
from vigil.control.rpc import rpc
from vigil.control.transactions import CallerDatabase
from vigil.storage.repositories.watchlists import Watchlist, WatchlistEntry, WatchlistRepository

WATCH_TYPE = EnumMap(pb.WatchlistType, "WATCHLIST_TYPE_", "watch_type")


def watchlist_message(w: Watchlist, entry_count: int = 0) -> pb.Watchlist:
    return pb.Watchlist(id=str(w.id), name=w.name, description=w.description or "",
                        watch_type=WATCH_TYPE.number(w.watch_type), is_active=w.is_active, entry_count=entry_count,
                        created_by=text(w.created_by), create_time=timestamp(w.created_at))


def entry_message(e: WatchlistEntry) -> pb.WatchlistEntry:
    return pb.WatchlistEntry(id=str(e.id), watchlist_id=str(e.watchlist_id), person_id=str(e.person_id),
                             notes=e.notes or "", added_by=text(e.added_by), add_time=timestamp(e.added_at))


class WatchlistService(watchlist_pb2_grpc.WatchlistServiceServicer):
    def __init__(self, db: CallerDatabase):
        self.db = db

    async def _with_count(self, repo: WatchlistRepository, watchlist: Watchlist) -> pb.Watchlist:
        counts = await repo.entry_counts([watchlist.id])
        return watchlist_message(watchlist, counts.get(watchlist.id, 0))

    @rpc("persons", "read")
    async def GetWatchlist(self, request, context):
        async with self.db.transaction() as tx:
            repo = WatchlistRepository(tx.conn)
            return pb.GetWatchlistResponse(watchlist=await self._with_count(repo, await repo.get(request.id)))

    @rpc("persons", "read")
    async def ListWatchlists(self, request, context):
        async with self.db.transaction() as tx:
            repo = WatchlistRepository(tx.conn)
            page = await repo.list(
                watch_types=WATCH_TYPE.labels(request.watch_types) or None,
                is_active=request.is_active if request.HasField("is_active") else None,
                page_size=request.page_size, page_token=repository_token(request))
            counts = await repo.entry_counts([w.id for w in page.items])
            return pb.ListWatchlistsResponse(
                watchlists=[watchlist_message(w, counts.get(w.id, 0)) for w in page.items],
                next_page_token=api_token(request, page.next_page_token))

    @rpc("persons", "write")
    async def CreateWatchlist(self, request, context):
        w = request.watchlist
        async with self.db.transaction() as tx:
            created = await WatchlistRepository(tx.conn).create(
                w.name, WATCH_TYPE.label(w.watch_type), tx.caller.user_id, description=optional(w.description),
                is_active=w.is_active if w.HasField("is_active") else True)
            await tx.audit("watchlist.create", "watchlist", created.id,
                           {"name": w.name, "watch_type": created.watch_type})
            return pb.CreateWatchlistResponse(watchlist=watchlist_message(created))

    @rpc("persons", "write")
    async def UpdateWatchlist(self, request, context):
        w = request.watchlist
        values = {"name": w.name, "description": optional(w.description), "is_active": w.is_active}
        if w.watch_type:
            values["watch_type"] = WATCH_TYPE.label(w.watch_type)
        changes = masked_changes(request.update_mask, values, resource="watchlist")
        async with self.db.transaction() as tx:
            repo = WatchlistRepository(tx.conn)
            updated = await repo.update(w.id, changes)
            await tx.audit("watchlist.update", "watchlist", updated.id, changes)
            return pb.UpdateWatchlistResponse(watchlist=await self._with_count(repo, updated))

    @rpc("persons", "delete")
    async def DeleteWatchlist(self, request, context):
        async with self.db.transaction() as tx:
            await WatchlistRepository(tx.conn).delete(request.id)
            await tx.audit("watchlist.delete", "watchlist", request.id)
            return pb.DeleteWatchlistResponse()

    @rpc("persons", "write")
    async def AddWatchlistEntry(self, request, context):
        e = request.entry
        async with self.db.transaction() as tx:
            entry = await WatchlistRepository(tx.conn).add_person(e.watchlist_id, e.person_id, tx.caller.user_id,
                                                                  notes=optional(e.notes))
            await tx.audit("watchlist.add_entry", "watchlist", entry.watchlist_id, {"person_id": str(entry.person_id)})
            return pb.AddWatchlistEntryResponse(entry=entry_message(entry))

    @rpc("persons", "write")
    async def RemoveWatchlistEntry(self, request, context):
        async with self.db.transaction() as tx:
            await WatchlistRepository(tx.conn).remove_entry(request.id)
            await tx.audit("watchlist.remove_entry", "watchlist_entry", request.id)
            return pb.RemoveWatchlistEntryResponse()

    @rpc("persons", "read")
    async def ListWatchlistEntries(self, request, context):
        async with self.db.transaction() as tx:
            page = await WatchlistRepository(tx.conn).entries(
                optional(request.watchlist_id), person_id=optional(request.person_id),
                page_size=request.page_size, page_token=repository_token(request))
            return pb.ListWatchlistEntriesResponse(entries=[entry_message(e) for e in page.items],
                                                   next_page_token=api_token(request, page.next_page_token))


SERVICE = (WatchlistService, watchlist_pb2_grpc.add_WatchlistServiceServicer_to_server, "vigil.v1.WatchlistService")
