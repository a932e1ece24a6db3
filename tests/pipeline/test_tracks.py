"""The track cadence both backends share: START, UPDATE every interval or on a better face, END
after the tracker lost the object; best faces re-sent only when they improve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from vigil.api.v1 import ingest_pb2 as pb
from vigil.pipeline.messages import FaceSample, SnapshotRef
from vigil.pipeline.tracks import FACE, PERSON, VEHICLE, VEHICLE_LABELS, Sighting, TrackBook

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BOX = (0.1, 0.1, 0.2, 0.4)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def face(quality: float, ms: int) -> FaceSample:
    vector = np.ones(128, dtype=np.float32) / np.sqrt(128)
    return FaceSample(vector, "m1", quality, 0.9, (0.2, 0.2, 0.05, 0.08), np.full((5, 2), 0.25), ms, at(ms),
                      SnapshotRef("cam/2026/12/01/t-1-face.jpg", "ab" * 32, 1234))


def kinds(updates) -> list[tuple[str, int]]:
    return [(u.track_id, u.kind) for u in updates]


def test_start_updates_at_the_interval_and_end_after_loss():
    book = TrackBook("e1", update_interval=timedelta(milliseconds=200), lost_after=timedelta(seconds=1))
    person = Sighting(7, PERSON, BOX, 0.8)
    assert kinds(book.observe(0, at(0), [person])) == [("e1-p7", pb.TRACK_UPDATE_KIND_START)]
    assert book.observe(1, at(100), [person]) == []  # not due yet
    assert kinds(book.observe(2, at(200), [person])) == [("e1-p7", pb.TRACK_UPDATE_KIND_UPDATE)]
    assert book.observe(3, at(900), []) == []  # unseen for 0.7 s: maybe occluded
    assert book.observe(4, at(1300), []) == []  # 1.1 s: still within lost_after
    for look in range(5, 7):  # unseen for over lost_after, but only 4 looks so far: a slow node, not a loss
        assert book.observe(look, at(1300 + look * 10), []) == []
    ended = book.observe(7, at(1400), [])
    assert kinds(ended) == [("e1-p7", pb.TRACK_UPDATE_KIND_END)]
    assert ended[0].frame_number == 2 and ended[0].capture_time.ToDatetime(tzinfo=UTC) == at(200)
    assert len(book) == 0
    # the tracker re-finds the object later: a new track, never an update of the ended one
    assert kinds(book.observe(8, at(1500), [person])) == [("e1-p7.1", pb.TRACK_UPDATE_KIND_START)]


def test_best_face_is_sent_only_when_it_improves():
    book = TrackBook("e1", update_interval=timedelta(seconds=10))
    first = book.observe(0, at(0), [Sighting(1, FACE, BOX, 0.9, face=face(0.6, 0))])
    assert first[0].best_face.quality == np.float32(0.6)
    assert first[0].best_face.snapshot_sha256 == "ab" * 32 and first[0].best_face.snapshot_size_bytes == 1234
    assert book.best_quality(FACE, 1) > 0.6  # what the next face must beat before it is embedded
    assert book.observe(1, at(40), [Sighting(1, FACE, BOX, 0.9, face=face(0.5, 40))]) == []
    better = book.observe(2, at(80), [Sighting(1, FACE, BOX, 0.9, face=face(0.8, 80))])
    assert kinds(better) == [("e1-f1", pb.TRACK_UPDATE_KIND_UPDATE)] and better[0].HasField("best_face")


def test_a_face_names_its_body_and_a_body_snapshot_goes_once():
    book = TrackBook("e2")
    snap = SnapshotRef("cam/2026/12/01/e2-p3-0-person.jpg", "cd" * 32, 99)
    updates = book.observe(0, at(0), [Sighting(3, PERSON, BOX, 0.7, snapshot=snap),
                                      Sighting(4, FACE, BOX, 0.9, parent_tracker_id=3)])
    body, head = updates
    assert body.snapshot.key == snap.key and head.parent_track_id == "e2-p3"
    assert not book.wants_snapshot(PERSON, 3)
    later = book.observe(9, at(500), [Sighting(3, PERSON, BOX, 0.7, snapshot=snap)])
    assert not later[0].HasField("snapshot")


def test_close_all_ends_every_open_track():
    book = TrackBook("e3")
    book.observe(0, at(0), [Sighting(1, PERSON, BOX, 0.8), Sighting(2, FACE, BOX, 0.9)])
    assert sorted(kinds(book.close_all())) == [("e3-f2", pb.TRACK_UPDATE_KIND_END), ("e3-p1", pb.TRACK_UPDATE_KIND_END)]
    assert book.close_all() == []


def test_boxes_past_the_frame_edge_are_clipped_into_it():
    book = TrackBook("e4")
    (update,) = book.observe(0, at(0), [Sighting(1, PERSON, (0.9, -0.05, 0.2, 0.5), 1.2)])
    b = update.box
    assert b.x >= 0 and b.x + b.width <= 1 + 1e-6 and b.y >= 0 and update.confidence <= 1


def test_a_vehicle_track_has_its_own_tag_and_carries_its_label():
    book = TrackBook("e1", update_interval=timedelta(milliseconds=200))
    updates = book.observe(0, at(0), [Sighting(7, PERSON, BOX, 0.8, label="person"),
                                      Sighting(7, VEHICLE, BOX, 0.7, label="car")])
    assert [(u.track_id, u.object_class, u.label) for u in updates] == [
        ("e1-p7", pb.OBJECT_CLASS_PERSON, "person"), ("e1-v7", pb.OBJECT_CLASS_VEHICLE, "car")]
    ended = book.close_all()
    assert {(u.track_id, u.label) for u in ended} == {("e1-p7", "person"), ("e1-v7", "car")}


def test_a_vehicles_label_is_the_one_most_of_its_sightings_gave():
    book = TrackBook("e1", update_interval=timedelta(milliseconds=100))
    labels = ["car", "truck", "truck", "car", "truck", "car"]  # the detector hesitates
    sent = [u.label for i, label in enumerate(labels)
            for u in book.observe(i, at(100 * i), [Sighting(3, VEHICLE, BOX, 0.6, label=label)])]
    # car first; truck once it leads; a tie keeps the label the track has
    assert sent == ["car", "car", "truck", "truck", "truck", "truck"]


def test_a_vehicle_sighting_must_say_which_vehicle():
    with pytest.raises(ValueError, match="label: a vehicle needs one of bicycle, bus, car, motorcycle, truck"):
        Sighting(1, VEHICLE, BOX, 0.5)
    with pytest.raises(ValueError, match="label"):
        Sighting(1, VEHICLE, BOX, 0.5, label="boat")



def test_the_node_and_the_control_plane_name_the_vehicles_the_proto_documents():
    """ingest.proto's TrackUpdate.label of a VEHICLE: the detector's list (vigil.models.objects), which
    the node and ingest take from it, is the one the API documents."""
    from vigil.control.analytics.model import VEHICLE_LABELS as ACCEPTED

    assert VEHICLE_LABELS == set(ACCEPTED) == {"bicycle", "bus", "car", "motorcycle", "truck"}
