"""A batch's tracks as detection events: one per (track, kind), kept in track_events.

kind 'human': a person track's first observation gives human_detected (its event_time, box and
confidence). kind 'vehicle': a vehicle track's first observation gives object_detected, with the
track's label ("car", "truck", ...) in metadata.object_label; the label is the node's majority over
the track's detections, so when a later batch names another kind the event is relabelled (and
sent on the feed again). kind 'face': a track's best face gives person_recognized (with
person_id) or face_detected (with cluster_id); a better face later re-describes the same event:
identity, box, confidence, frame, snapshot and metadata change, its id and event_time (when the
face was first seen) do not. A face no better than the stored one changes nothing, and an event
an operator reviewed (or deleted) is left as they left it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from vigil.control.analytics.model import ObjectClass
from vigil.control.ingest.batch import BestFace, Snapshot, TrackBatch, raise_vehicle_parent
from vigil.control.ingest.clusters import Materialised, Sighting, UnknownClusters
from vigil.control.ingest.messages import pixel_box
from vigil.control.ingest.recognition import Identity, NewCluster, Recognized, Recognizer
from vigil.control.ingest.tracks import TrackSummary
from vigil.storage.repositories.events import (
    Event,
    EventRepository,
    NewEvent,
    TrackEvent,
    TrackEventRepository,
)
from vigil.storage.repositories.media import MediaFileRepository

SIMILARITY_DIGITS = 4
# The event of a body track (its first observation), by class: (track_events.kind, event type).
BODY_EVENTS = {ObjectClass.PERSON: ("human", "human_detected"), ObjectClass.VEHICLE: ("vehicle", "object_detected")}
# How long snapshots are kept (media_files.retention_until); the retention job deletes them after.
SNAPSHOT_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class RecordedEvent:
    event: Event  # as stored after this batch
    created: bool  # False: an existing event was re-described (a better face, a vehicle's settled label)
    track_id: str


@dataclass(frozen=True)
class _FaceChange:
    summary: TrackSummary
    previous: Event | None  # the track's face event before this batch
    parent_track_id: str | None  # the batch's association, else the one stored


def _milliseconds_since(moment: datetime) -> int:
    return round((datetime.now(UTC) - moment).total_seconds() * 1000)


class TrackEventWriter:
    def __init__(self, conn, batch: TrackBatch, recognizer: Recognizer):
        self.conn = conn
        self.batch = batch
        self.recognizer = recognizer
        self.events = EventRepository(conn)
        self.tracks = TrackEventRepository(conn, batch.camera_id)
        self.media = MediaFileRepository(conn)

    async def write(self, summaries: list[TrackSummary]) -> list[RecordedEvent]:
        bodies = [(s, BODY_EVENTS[s.object_class][0]) for s in summaries if s.object_class in BODY_EVENTS]
        keys = [(s.track_id, kind) for s, kind in bodies]
        keys += [(s.track_id, "face") for s in summaries if s.face]
        parents = [(s.parent_track_id, "vehicle") for s in summaries if s.parent_track_id]
        existing = await self.tracks.existing(keys + parents)  # under the camera's ingest lock (pipeline.py)
        self._check_parents(existing)
        mappings: list[TrackEvent] = []  # of the batch's new events: one statement for all of them
        recorded = await self._bodies([(s, kind) for s, kind in bodies if (s.track_id, kind) not in existing],
                                      mappings)
        for s, kind in bodies:  # a body snapshot sent after the track's first batch
            if s.snapshot and (mapping := existing.get((s.track_id, kind))):
                await self._register(s.snapshot, mapping.event_id, mapping.event_timestamp)
        recorded += await self._relabel([(s, m) for s, kind in bodies if kind == "vehicle" and s.label
                                         and (m := existing.get((s.track_id, kind))) and m.object_label != s.label])
        recorded += await self._faces(summaries, existing, mappings)
        await self.tracks.add(mappings)
        await self.tracks.set_parents({s.track_id: s.parent_track_id for s in summaries if s.parent_track_id})
        return recorded

    def _check_parents(self, existing: dict[tuple[str, str], TrackEvent]) -> None:
        """A face's parent is a body: never a vehicle track of an earlier batch (batch.py checks this one's)."""
        for u in self.batch.updates:
            if u.parent_track_id and (u.parent_track_id, "vehicle") in existing:
                raise_vehicle_parent(f"batch.updates[{u.index}].parent_track_id", u.parent_track_id)

    def _metadata(self, s: TrackSummary, observed_at: datetime) -> dict[str, Any]:
        metadata = {"track_id": s.track_id, "object_class": s.object_class.value, "node_id": str(self.batch.node_id),
                    "processing_time_ms": _milliseconds_since(observed_at)}  # capture → recorded here
        if s.label:
            metadata["object_label"] = s.label
        return metadata

    async def _bodies(self, new: list[tuple[TrackSummary, str]], mappings: list[TrackEvent]) -> list[RecordedEvent]:
        """The new person and vehicle tracks' events (each describes its track's first observation), in one
        statement."""
        b = self.batch
        events = await self.events.insert_many([
            NewEvent(b.camera_id, BODY_EVENTS[s.object_class][1], s.first.capture_time, round(s.first.confidence, 3),
                     pixel_box(s.first.box, b.frame_width, b.frame_height), frame_number=s.first.frame_number,
                     metadata=self._metadata(s, s.first.capture_time)) for s, _ in new])
        recorded = []
        for (s, kind), event in zip(new, events):
            mappings.append(TrackEvent(s.track_id, kind, event.id, event.timestamp, None, None,
                                       s.label if kind == "vehicle" else None))
            if s.snapshot:
                await self._register(s.snapshot, event.id, event.timestamp)
                event = await self.events.get(event.id, event.timestamp)  # now with its snapshot's media id
            recorded.append(RecordedEvent(event, True, s.track_id))
        return recorded

    async def _relabel(self, changed: list[tuple[TrackSummary, TrackEvent]]) -> list[RecordedEvent]:
        """Vehicle events whose track's label settled on another kind since they were recorded."""
        if not changed:
            return []
        events = await self.events.relabel([(m.event_id, m.event_timestamp) for _, m in changed],
                                           [s.label for s, _ in changed])
        await self.tracks.set_labels("vehicle", {s.track_id: s.label for s, _ in changed})
        track_of = {m.event_id: s.track_id for s, m in changed}
        return [RecordedEvent(e, False, track_of[e.id]) for e in events]

    async def _register(self, snapshot: Snapshot, event_id: UUID, moment: datetime) -> None:
        """The node wrote the object before naming it; the row makes it the event's media."""
        await self.media.register(self.batch.camera_id, snapshot.key, checksum=snapshot.sha256,
                                  file_size=snapshot.size_bytes, mime_type="image/jpeg", timestamp=moment,
                                  retention_until=moment + SNAPSHOT_RETENTION, event_id=event_id)

    async def _faces(self, summaries: list[TrackSummary], existing: dict[tuple[str, str], TrackEvent],
                     mappings: list[TrackEvent]) -> list[RecordedEvent]:
        improved = [s for s in summaries if s.face and _better(s.face, existing.get((s.track_id, "face")))]
        stored = await self.events.get_many((m.event_id, m.event_timestamp) for s in improved
                                            if (m := existing.get((s.track_id, "face"))))
        changes = []
        for s in improved:
            mapping = existing.get((s.track_id, "face"))
            previous = stored.get(mapping.event_id) if mapping else None
            if mapping is None or (previous is not None and not previous.reviewed):
                changes.append(_FaceChange(s, previous, s.parent_track_id or (mapping and mapping.parent_track_id)))
        if not changes:
            return []
        identities = await self.recognizer.identify(self.conn, [c.summary.face for c in changes])
        created = await self._settle_clusters(changes, identities)
        described = [self._describe(c, identity, created) for c, identity in zip(changes, identities)]
        new = [i for i, c in enumerate(changes) if c.previous is None]
        inserted = dict(zip(new, await self.events.insert_many([
            NewEvent(self.batch.camera_id, timestamp=changes[i].summary.face.capture_time, **described[i])
            for i in new])))
        recorded = []
        for i, change in enumerate(changes):
            s, face = change.summary, change.summary.face
            if change.previous is None:
                event = inserted[i]
                mappings.append(TrackEvent(s.track_id, "face", event.id, event.timestamp, round(face.quality, 3),
                                           change.parent_track_id))
            else:
                event = await self.events.redescribe(change.previous.id, change.previous.timestamp, **described[i])
                await self.tracks.set_face_quality(s.track_id, round(face.quality, 3))
            if face.snapshot:
                await self._register(face.snapshot, event.id, face.capture_time)
                event = await self.events.get(event.id, event.timestamp)  # now with its snapshot's media id
            recorded.append(RecordedEvent(event, change.previous is None, s.track_id))
        return recorded

    async def _settle_clusters(self, changes: list[_FaceChange],
                               identities: list[Identity]) -> dict[NewCluster, Materialised]:
        sightings, left = [], []
        for c, identity in zip(changes, identities):
            before = c.previous.cluster_id if c.previous else None
            after = None if isinstance(identity, Recognized) or isinstance(identity.cluster, NewCluster) \
                else identity.cluster.id
            if before is not None and before != after:
                left.append(before)
            if not isinstance(identity, Recognized):
                sightings.append(Sighting(c.summary.face, identity.cluster, joins=before is None or before != after))
        return await UnknownClusters(self.conn).apply(sightings, left)

    def _describe(self, change: _FaceChange, identity: Identity,
                  created: dict[NewCluster, Materialised]) -> dict[str, Any]:
        """What the track's face event says: inserted new, or re-described."""
        face, update = change.summary.face, change.summary.face_update
        if isinstance(identity, Recognized):
            event_type, person_id, cluster_id = "person_recognized", identity.person_id, None
        else:
            cluster = identity.cluster
            event_type, person_id = "face_detected", None
            cluster_id = created[cluster].cluster_id if isinstance(cluster, NewCluster) else cluster.id
        return {
            "event_type": event_type, "person_id": person_id, "cluster_id": cluster_id,
            "confidence": round(face.confidence or update.confidence, 3),
            "bounding_box": pixel_box(face.box or update.box, self.batch.frame_width, self.batch.frame_height),
            "image_path": face.snapshot_key, "frame_number": face.frame_number,
            "metadata": self._face_metadata(change, identity),
        }

    def _face_metadata(self, change: _FaceChange, identity: Identity) -> dict[str, Any]:
        s, face = change.summary, change.summary.face
        metadata = {
            **self._metadata(s, face.capture_time), "model_version": face.model_version,
            "face_quality": round(face.quality, 3), "similarity": round(identity.similarity, SIMILARITY_DIGITS),
            "face_capture_time": face.capture_time.isoformat(), "landmarks": [list(p) for p in face.landmarks],
        }
        if isinstance(identity, Recognized):
            metadata["matched_face_id"] = str(identity.face_id)
        if change.parent_track_id:
            metadata["parent_track_id"] = change.parent_track_id
        return metadata


def _better(face: BestFace, stored: TrackEvent | None) -> bool:
    """Compared as stored (three decimals), so a resent face is never "better" than itself."""
    return stored is None or stored.face_quality is None or round(face.quality, 3) > stored.face_quality
