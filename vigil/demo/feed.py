"""The live feed as a person reads it: one line per event, activity and alert (time, camera,
what, track, snapshot link), a footer with the node's streams, and the tallies for the summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import grpc
from google.protobuf import duration_pb2
from rich.console import Group
from rich.markup import escape
from rich.text import Text

from vigil.api.v1 import alert_pb2, common_pb2, event_pb2, media_pb2, node_pb2, person_pb2
from vigil.demo.scenario import Api, Scenario
from vigil.logs import get_logger

log = get_logger("vigil.demo")

SNAPSHOT_URL_TTL_S = 24 * 3600  # long enough to look at the pictures after the demo


def enum_name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower().replace("_", " ")


def short_track(track_id: str) -> str:
    # node track ids are "<stream epoch>-<class tag><n>": the tag and number tell them apart here
    return track_id.rsplit("-", 1)[-1] if track_id else "-"


def local_time(ts) -> str:
    if not ts.seconds and not ts.nanos:
        return datetime.now().strftime("%H:%M:%S")
    return datetime.fromtimestamp(ts.seconds).strftime("%H:%M:%S")  # the viewer's local time


WHAT_WIDTH = 52


def padded(markup: str, width: int = WHAT_WIDTH) -> str:
    """Markup padded to a visible width, so that the track and snapshot columns line up."""
    return markup + " " * max(0, width - len(Text.from_markup(markup).plain))


@dataclass
class Identity:
    name: str
    tracks: set[str] = field(default_factory=set)
    best_similarity: float = -1.0
    snapshot: str = ""


@dataclass(frozen=True)
class SeenEvent:
    """The latest description of one event: the control plane re-describes an event (same id)
    when a better face of its track arrives, which may change the identity."""

    event_type: int
    track_id: str
    who: str  # person name, cluster label or ""
    similarity: float | None
    snapshot: str


@dataclass
class StreamTally:
    camera: str
    frames_in_file: int
    state: int = node_pb2.STREAM_STATE_UNSPECIFIED
    processed_fps: float = 0.0
    decode_fps: float = 0.0
    active_tracks: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_error: str = ""
    running_since: float | None = None
    stopped_at: float | None = None
    processed_estimate: float = 0.0  # integral of processed fps over the polls (for --loop)
    last_poll: float | None = None


@dataclass
class Tally:
    seen: dict[str, SeenEvent] = field(default_factory=dict)  # by event id
    activities: Counter = field(default_factory=Counter)
    alerts: list[tuple[str, str, str]] = field(default_factory=list)  # (severity, rule, message)
    last_item: float = field(default_factory=time.monotonic)

    @property
    def events(self) -> Counter:
        return Counter(e.event_type for e in self.seen.values())

    def identities(self) -> dict[str, Identity]:
        found: dict[str, Identity] = {}
        for e in self.seen.values():
            if e.event_type == common_pb2.EVENT_TYPE_PERSON_RECOGNIZED:
                who = found.setdefault(e.who, Identity(e.who))
                who.tracks.add(e.track_id)
                if e.similarity is not None and e.similarity > who.best_similarity:
                    who.best_similarity, who.snapshot = e.similarity, e.snapshot or who.snapshot
        return found

    def clusters(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for e in self.seen.values():
            if e.event_type == common_pb2.EVENT_TYPE_FACE_DETECTED:
                found.setdefault(e.who, set()).add(e.track_id)
        return found


class Feed:
    """Turns SubscribeResponse messages into lines, looking up names once each."""

    def __init__(self, api: Api, scenario: Scenario, *, links: bool):
        self.api = api
        self.links = links  # a terminal: snapshot links as hyperlinks; otherwise the URL itself
        self.cameras = scenario.camera_names()
        self.zones = {z.id: z.name for z in scenario.zones.values()}
        self.tally = Tally()
        self._persons: dict[str, str] = {}
        self._clusters: dict[str, str] = {}

    # --- lookups -------------------------------------------------------------------------------

    async def _person_name(self, person_id: str) -> str:
        if person_id not in self._persons:
            try:
                person = (await self.api.call(self.api.persons.GetPerson,
                                              person_pb2.GetPersonRequest(id=person_id))).person
                self._persons[person_id] = person.name or f"person {person_id[:8]}"
            except grpc.aio.AioRpcError:
                self._persons[person_id] = f"person {person_id[:8]}"
        return self._persons[person_id]

    async def _cluster_label(self, cluster_id: str) -> str:
        if cluster_id not in self._clusters:
            try:
                cluster = (await self.api.call(self.api.persons.GetUnknownCluster,
                                               person_pb2.GetUnknownClusterRequest(id=cluster_id))).cluster
                self._clusters[cluster_id] = cluster.label or f"cluster {cluster_id[:8]}"
            except grpc.aio.AioRpcError:
                self._clusters[cluster_id] = f"cluster {cluster_id[:8]}"
        return self._clusters[cluster_id]

    async def snapshot_url(self, media_id: str) -> str:
        if not media_id:
            return ""
        try:
            response = await self.api.call(self.api.media.GetMediaUrl, media_pb2.GetMediaUrlRequest(
                media_id=media_id, expires_in=duration_pb2.Duration(seconds=SNAPSHOT_URL_TTL_S)))
            return response.url
        except grpc.aio.AioRpcError as exc:
            log.warning("snapshot url", media_id=media_id, code=exc.code().name, details=exc.details())
            return ""

    # --- lines ---------------------------------------------------------------------------------

    def _line(self, when: str, camera_id: str, what: str, track: str = "", url: str = "",
              media_id: str = "") -> Text:
        camera = self.cameras.get(camera_id, camera_id[:8] or "-")
        if url:
            snap = f"[link={url}]snapshot[/link]" if self.links else escape(url)
        else:
            snap = f"[dim]media {media_id[:8]}[/dim]" if media_id else ""
        return Text.from_markup(f"{when}  [cyan]{escape(camera[:16]):16}[/cyan]  {what}  "
                                f"[dim]{escape(short_track(track)) if track else ''}[/dim]  {snap}".rstrip())

    async def describe(self, response: event_pb2.SubscribeResponse) -> Text | None:
        kind = response.WhichOneof("item")
        if kind in (None, "keepalive"):
            return None
        self.tally.last_item = time.monotonic()
        if kind == "event":
            return await self._event(response.event)
        if kind == "suspicious_activity":
            return self._activity(response.suspicious_activity)
        if kind == "alert_update":
            return self._alert_update(response.alert_update)
        return self._alert(response.alert)

    async def _event(self, e) -> Text | None:
        url = await self.snapshot_url(e.snapshot_media_id)
        similarity = f"{e.similarity:.2f}" if e.HasField("similarity") else "-"
        who = ""
        if e.event_type == common_pb2.EVENT_TYPE_PERSON_RECOGNIZED:
            who = await self._person_name(e.person_id)
            what = f"[bold green]recognised {escape(who)}[/bold green] (similarity {similarity})"
        elif e.event_type == common_pb2.EVENT_TYPE_FACE_DETECTED:
            who = await self._cluster_label(e.cluster_id) if e.cluster_id else "no cluster"
            what = f"[yellow]unknown face {escape(who)}[/yellow] (cluster similarity {similarity})"
        elif e.event_type == common_pb2.EVENT_TYPE_HUMAN_DETECTED:
            what = f"person detected (confidence {e.confidence:.2f})"
        elif e.event_type == common_pb2.EVENT_TYPE_OBJECT_DETECTED:
            what = f"[cyan]{escape(e.object_label or 'object')} detected[/cyan] (confidence {e.confidence:.2f})"
        else:
            what = escape(enum_name(common_pb2.EventType, e.event_type, "EVENT_TYPE_"))
        before = self.tally.seen.get(e.id)
        self.tally.seen[e.id] = SeenEvent(e.event_type, e.track_id, who,
                                          e.similarity if e.HasField("similarity") else None,
                                          url or (before.snapshot if before else ""))
        if before is not None:
            if (before.event_type, before.who) == (e.event_type, who):
                return None  # a better face, same identity: nothing new to a person
            what = f"{what} [dim](was {escape(before.who or 'unknown')})[/dim]"
        return self._line(local_time(e.event_time), e.camera_id, padded(what), e.track_id, url, e.snapshot_media_id)

    def _activity(self, a) -> Text:
        self.tally.activities[a.activity_type] += 1
        name = enum_name(common_pb2.ActivityType, a.activity_type, "ACTIVITY_TYPE_")
        zone = self.zones.get(a.zone_id, a.zone_id[:8]) if a.zone_id else ""
        severity = enum_name(common_pb2.Severity, a.severity, "SEVERITY_")
        what = f"[magenta]{escape(name)}[/magenta]" + (f" in zone {escape(zone)!r}" if zone else "") + f" ({severity})"
        track = a.details.track_ids[0] if a.details.track_ids else ""
        return self._line(local_time(a.event_time), a.camera_id, padded(what), track, media_id=a.snapshot_media_id)

    def _alert(self, a) -> Text:
        severity = enum_name(common_pb2.Severity, a.severity, "SEVERITY_")
        rule = a.trigger.rule_name or a.alert_type
        self.tally.alerts.append((severity, rule, a.message))
        # the rule names the reason; the full message (who, where, when) is in the summary file
        what = f"[bold red]ALERT {severity}[/bold red] {escape(rule)}"
        return self._line(local_time(a.create_time), a.camera_id, padded(what), a.trigger.track_id)


    def _alert_update(self, u) -> Text | None:
        """A later match joining an open alert (an incident, not a new alert); status changes made
        elsewhere (sent, acknowledged) say nothing new to the person watching."""
        if u.kind not in (alert_pb2.ALERT_UPDATE_KIND_MATCH_ADDED, alert_pb2.ALERT_UPDATE_KIND_ESCALATED):
            return None
        a = u.alert
        severity = enum_name(common_pb2.Severity, a.severity, "SEVERITY_")
        rule = a.trigger.rule_name or a.alert_type
        raised = " [bold red]escalated[/bold red]" if u.kind == alert_pb2.ALERT_UPDATE_KIND_ESCALATED else ""
        what = f"[red]alert {severity}[/red] {escape(rule)}: match {a.match_count}{raised}"
        return self._line(local_time(u.match.capture_time if u.match.HasField("capture_time") else a.last_match_time),
                          a.camera_id, padded(what), u.match.track_id)


def footer(node: node_pb2.Node | None, streams: dict[str, StreamTally], tally: Tally, elapsed_s: float,
           loop: bool) -> Group:
    lines = []
    if node is None:
        lines.append(Text.from_markup("[dim]waiting for the pipeline node…[/dim]"))
    else:
        state = enum_name(node_pb2.NodeState, node.state, "NODE_STATE_")
        lines.append(Text.from_markup(f"[bold]node {escape(node.name)}[/bold] {state} · "
                                      f"{len(node.camera_ids)} stream(s) assigned · {elapsed_s:.0f} s"))
    for s in streams.values():
        state = enum_name(node_pb2.StreamState, s.state, "STREAM_STATE_") if s.state else "not started"
        extra = f" · [red]{escape(s.last_error[:80])}[/red]" if s.last_error else ""
        lines.append(Text.from_markup(f"  {escape(s.camera):16} {state:12} {s.processed_fps:5.1f} fps processed · "
                                      f"{s.active_tracks} active tracks · {s.dropped} dropped{extra}"))
    events = sum(tally.events.values())
    lines.append(Text.from_markup(
        f"[dim]{events} events · {sum(tally.activities.values())} activities · {len(tally.alerts)} alerts · "
        + ("Ctrl+C to stop[/dim]" if loop else "ends with the videos, Ctrl+C to stop now[/dim]")))
    return Group(*lines)
