"""What a batch says about each of its tracks: its class, its first observation, its best face,
the person track a face track belongs to, and a snapshot of a person's body or a vehicle."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.control.analytics.model import ObjectClass
from vigil.control.ingest.batch import BestFace, Snapshot, TrackUpdate


@dataclass(frozen=True)
class TrackSummary:
    track_id: str
    object_class: ObjectClass
    first: TrackUpdate  # a new person or vehicle track's event describes its first observation (and label)
    face_update: TrackUpdate | None  # the update carrying the batch's best face of the track
    parent_track_id: str | None  # the latest association the batch gives
    snapshot: Snapshot | None = None  # the first body snapshot the batch carries
    label: str | None = None  # the latest label the batch gives (the node's settled guess)

    @property
    def face(self) -> BestFace | None:
        return self.face_update.best_face if self.face_update else None


def summarise(updates: tuple[TrackUpdate, ...]) -> list[TrackSummary]:
    """One summary per track, in order of first appearance; of equal faces the later one wins."""
    first: dict[str, TrackUpdate] = {}
    face: dict[str, TrackUpdate] = {}
    parent: dict[str, str] = {}
    snapshot: dict[str, Snapshot] = {}
    label: dict[str, str] = {}
    for u in updates:
        if u.snapshot:
            snapshot.setdefault(u.track_id, u.snapshot)
        first.setdefault(u.track_id, u)
        if u.best_face and (u.track_id not in face or u.best_face.quality >= face[u.track_id].best_face.quality):
            face[u.track_id] = u
        if u.parent_track_id:
            parent[u.track_id] = u.parent_track_id
        if u.label:
            label[u.track_id] = u.label
    return [TrackSummary(t, u.object_class, u, face.get(t), parent.get(t), snapshot.get(t), label.get(t))
            for t, u in first.items()]
