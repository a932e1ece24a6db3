"""EventService: detection events and suspicious activities (history, review), the live event feed
and the dashboard figures.

History is read as the caller (row-level security limits it to their sites). The feed is read
from the Redis stream the outbox relay fills (control.ingest), so any replica serves any
subscriber; it mirrors the same site limits, filters server-side and resumes from the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import grpc
import redis.asyncio as aioredis

from vigil.api.v1 import event_pb2 as pb
from vigil.api.v1 import event_pb2_grpc
from vigil.control.auth import caller_may
from vigil.control.convert import EnumMap, timestamp
from vigil.control.fleet import fleet_stats
from vigil.control.ingest.batch import MAX_LABEL
from vigil.control.ingest.fanout import FeedHub
from vigil.control.ingest.feed import FeedFilter
from vigil.control.ingest.messages import (
    ACTIVITY_TYPE,
    EVENT_TYPE,
    OBJECT_CLASS,
    REVIEW_ACTION,
    SEVERITY,
    event_message,
    suspicious_activity_message,
)
from vigil.control.ingest.subscription import FeedSubscription, ResumeTokenExpired, SubscriberTooSlow, start_position
from vigil.control.metrics import ControlMetrics
from vigil.control.request_checks import (
    api_token,
    checked_text,
    enum_label,
    id_list,
    repository_token,
    required_id,
    time_bounds,
)
from vigil.control.rpc import rpc
from vigil.control.transactions import CallerDatabase
from vigil.errors import InvalidArgument, PermissionDenied
from vigil.storage.bus import EventBus
from vigil.storage.repositories.events import (
    EventRepository,
    FeedAudienceRepository,
    SuspiciousActivityRepository,
    dashboard_stats,
)
from vigil.storage.repositories.persons import PersonRepository

FEED_KIND = EnumMap(pb.FeedItemKind, "FEED_ITEM_KIND_", "kinds")
DEFAULT_BATCH_ITEMS, MAX_BATCH_ITEMS = 256, 1000  # SubscribeBatchesRequest (event.proto)
DEFAULT_BATCH_DELAY_MS, MAX_BATCH_DELAY_MS = 50, 1000
MAX_NOTE = 2000


def any_of(enum: EnumMap, numbers: Sequence[int], field: str) -> list[str] | None:
    """A filter of enum values as labels; None (no condition) when empty or when it holds
    UNSPECIFIED, which in a filter means "any" (common.proto)."""
    if not numbers or 0 in numbers:
        return None
    return [enum_label(enum, n, f"{field}[{i}]") for i, n in enumerate(numbers)]


def ids_or_none(field: str, values: Sequence[str]) -> list[UUID] | None:
    return id_list(field, values) or None


def object_labels(field: str, values: Sequence[str]) -> list[str] | None:
    """A filter of object labels ("car", "truck", ...); None (no condition) when empty."""
    for i, value in enumerate(values):
        checked_text(f"{field}[{i}]", value, MAX_LABEL, required=True)
    return list(values) or None


class EventService(event_pb2_grpc.EventServiceServicer):
    def __init__(self, db: CallerDatabase, redis: aioredis.Redis, hub: FeedHub, metrics: ControlMetrics):
        self.db = db
        self.redis = redis
        self.hub = hub  # the replica's one reader of the feed stream (IngestRuntime's)
        self.metrics = metrics

    # ----------------------------------------------------------------------- events

    @rpc("events", "read")
    async def ListEvents(self, request, context):
        since, until = time_bounds(request, "time_range")
        filters = {
            "camera_ids": ids_or_none("camera_ids", request.camera_ids),
            "site_ids": ids_or_none("site_ids", request.site_ids),
            "event_types": any_of(EVENT_TYPE, request.event_types, "event_types"),
            "person_ids": ids_or_none("person_ids", request.person_ids),
            "cluster_ids": ids_or_none("cluster_ids", request.cluster_ids),
            "reviewed": request.reviewed if request.HasField("reviewed") else None,
            "object_classes": any_of(OBJECT_CLASS, request.object_classes, "object_classes"),
            "object_labels": object_labels("object_labels", request.object_labels),
            "since": since, "until": until,
        }
        async with self.db.transaction() as tx:
            page = await EventRepository(tx.conn).list(**filters, page_size=request.page_size,
                                                       page_token=repository_token(request))
            return pb.ListEventsResponse(events=[event_message(e) for e in page.items],
                                         next_page_token=api_token(request, page.next_page_token))

    @rpc("events", "read")
    async def GetEvent(self, request, context):
        event_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetEventResponse(event=event_message(await EventRepository(tx.conn).get(event_id)))

    @rpc("events", "acknowledge")
    async def ReviewEvent(self, request, context):
        event_id = required_id("id", request.id)
        if request.action == pb.REVIEW_ACTION_MERGE:
            raise InvalidArgument("action", "MERGE is recorded by PersonService.MergePersons, not by a review")
        action = enum_label(REVIEW_ACTION, request.action, "action")
        if action == "correct_name":
            person_id = required_id("person_id", request.person_id)
        elif request.person_id:
            raise InvalidArgument("person_id", "must be empty unless action is CORRECT_NAME")
        else:
            person_id = None
        note = checked_text("note", request.note, MAX_NOTE)
        async with self.db.transaction() as tx:
            if action == "delete" and not await caller_may("events", "delete"):
                raise PermissionDenied(f"role {tx.caller.role!r} may review events but not delete them")
            if person_id is not None:
                await PersonRepository(tx.conn).get(person_id)  # NOT_FOUND names the person
            reviewed = await EventRepository(tx.conn).review(event_id, action, reviewer_id=tx.caller.user_id,
                                                             person_id=person_id, notes=note)
            await tx.audit("event.review", "event", event_id,
                           {"action": action, **({"person_id": str(person_id)} if person_id else {})})
            return pb.ReviewEventResponse(event=event_message(reviewed) if reviewed else None)

    # ----------------------------------------------------------------------- suspicious activities

    @rpc("events", "read")
    async def ListSuspiciousActivities(self, request, context):
        since, until = time_bounds(request, "time_range")
        filters = {
            "camera_ids": ids_or_none("camera_ids", request.camera_ids),
            "site_ids": ids_or_none("site_ids", request.site_ids),
            "activity_types": any_of(ACTIVITY_TYPE, request.activity_types, "activity_types"),
            "zone_ids": ids_or_none("zone_ids", request.zone_ids),
            "severities": any_of(SEVERITY, request.severities, "severities"),
            "object_classes": any_of(OBJECT_CLASS, request.object_classes, "object_classes"),
            "since": since, "until": until,
        }
        async with self.db.transaction() as tx:
            page = await SuspiciousActivityRepository(tx.conn).list(**filters, page_size=request.page_size,
                                                                    page_token=repository_token(request))
            return pb.ListSuspiciousActivitiesResponse(
                suspicious_activities=[suspicious_activity_message(a) for a in page.items],
                next_page_token=api_token(request, page.next_page_token))

    @rpc("events", "read")
    async def GetSuspiciousActivity(self, request, context):
        activity_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            activity = await SuspiciousActivityRepository(tx.conn).get(activity_id)
            return pb.GetSuspiciousActivityResponse(suspicious_activity=suspicious_activity_message(activity))

    # ----------------------------------------------------------------------- the live feed

    @rpc("events", "read")
    async def Subscribe(self, request, context):
        async for response in self._feed(request, context, lambda subscription: subscription.responses()):
            yield response

    @rpc("events", "read")
    async def SubscribeBatches(self, request, context):
        max_items = _bounded("max_items", request.max_items, DEFAULT_BATCH_ITEMS, MAX_BATCH_ITEMS)
        delay_ms = DEFAULT_BATCH_DELAY_MS
        if request.HasField("max_delay_ms"):  # 0: no wait (not the default)
            delay_ms = request.max_delay_ms and _bounded("max_delay_ms", request.max_delay_ms, 0, MAX_BATCH_DELAY_MS)
        async for batch in self._feed(request.filter, context,
                                      lambda subscription: subscription.batches(max_items, delay_ms / 1000)):
            yield batch

    async def _feed(self, request, context, stream_of):
        """The feed of the request's filters from its resume token, as stream_of(subscription) yields it."""
        async with self.db.transaction() as tx:
            feed_filter = await self._filter(tx, request)
        try:
            position = await start_position(self.redis, request.resume_token)
            subscription = FeedSubscription(EventBus(self.redis), feed_filter, position,
                                            self._watched(feed_filter.watchlist_ids), hub=self.hub)
            metrics = self.metrics
            metrics.feed_subscribers.inc()
            try:
                async for response in stream_of(subscription):
                    if isinstance(response, bytes):  # a feed message (keepalives are messages)
                        metrics.feed_lag_messages.observe(subscription.queue.qsize())  # still queued behind it
                    yield response
            finally:
                metrics.feed_subscribers.dec()
        except ResumeTokenExpired as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        except SubscriberTooSlow:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the subscriber fell more than {subscription.queue.maxsize} messages behind the "
                                f"live feed; subscribe again with resume_token={subscription.delivered} to continue "
                                "without loss")
        except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                f"the event feed is unavailable ({exc}); subscribe again with the last resume_token")

    async def _filter(self, tx, request) -> FeedFilter:
        return FeedFilter(
            kinds=frozenset(enum_label(FEED_KIND, k, f"kinds[{i}]") for i, k in enumerate(request.kinds)),
            camera_ids=frozenset(map(str, id_list("camera_ids", request.camera_ids))),
            site_ids=frozenset(map(str, id_list("site_ids", request.site_ids))),
            event_types=frozenset(any_of(EVENT_TYPE, request.event_types, "event_types") or ()),
            activity_types=frozenset(any_of(ACTIVITY_TYPE, request.activity_types, "activity_types") or ()),
            severities=frozenset(any_of(SEVERITY, request.severities, "severities") or ()),
            person_ids=frozenset(map(str, id_list("person_ids", request.person_ids))),
            object_classes=frozenset(any_of(OBJECT_CLASS, request.object_classes, "object_classes") or ()),
            object_labels=frozenset(object_labels("object_labels", request.object_labels) or ()),
            watchlist_ids=tuple(id_list("watchlist_ids", request.watchlist_ids)),
            visible_site_ids=None if tx.caller.rls_role == "super_admin" else frozenset(
                map(str, await FeedAudienceRepository(tx.conn).assigned_site_ids(tx.caller.user_id))))

    def _watched(self, watchlist_ids: tuple[UUID, ...]):
        async def watched(person_ids: set[str]) -> set[str]:
            async with self.db.transaction() as tx:
                return {str(p) for p in await FeedAudienceRepository(tx.conn).watched(watchlist_ids, person_ids)}
        return watched

    # ----------------------------------------------------------------------- dashboard

    @rpc("events", "read")
    async def GetDashboardStats(self, request, context):
        sees_fleet = await caller_may("nodes", "read")
        async with self.db.transaction() as tx:
            stats = await dashboard_stats(tx.conn)
            fleet = await fleet_stats(tx.conn) if sees_fleet else None
        figures = {k: v for k, v in vars(stats).items() if k != "computed_at" and v is not None}
        return pb.GetDashboardStatsResponse(stats=pb.DashboardStats(**figures, fleet=fleet,
                                                                    compute_time=timestamp(stats.computed_at)))


def _bounded(field: str, value: int, default: int, most: int) -> int:
    """A count in [1, most]; 0 means the default."""
    if value == 0:
        return default
    if not 0 < value <= most:
        raise InvalidArgument(field, f"must be between 1 and {most} (0 = {default}), got {value}")
    return value


def _serialised(response) -> bytes:
    """Subscribe and SubscribeBatches yield feed messages already serialised, once for all their subscribers."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_to_server(servicer: EventService, server) -> None:
    """The generated registration, with the feed's responses passed through _serialised."""
    handlers = {}

    class Collect:
        def add_generic_rpc_handlers(self, _):
            pass

        def add_registered_method_handlers(self, _, method_handlers):
            handlers.update(method_handlers)

    event_pb2_grpc.add_EventServiceServicer_to_server(servicer, Collect())
    for method in ("Subscribe", "SubscribeBatches"):
        handlers[method] = handlers[method]._replace(response_serializer=_serialised)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


SERVICE_NAME = "vigil.v1.EventService"
SERVICE = (EventService, add_to_server, SERVICE_NAME)
