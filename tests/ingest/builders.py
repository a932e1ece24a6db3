"""Track batches as a pipeline node sends them, a Publish stream that returns the acks, and a feed
reader that waits for what it expects."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf import timestamp_pb2

from vigil.api.v1 import common_pb2
from vigil.api.v1 import event_pb2 as event_pb
from vigil.api.v1 import ingest_pb2 as pb

NODE_ID = str(uuid.uuid4())
T0 = datetime.now(UTC).replace(microsecond=0)


def at(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(T0 + timedelta(seconds=seconds))
    return ts


def box(x=0.1, y=0.1, width=0.2, height=0.5) -> common_pb2.BoundingBox:
    return common_pb2.BoundingBox(x=x, y=y, width=width, height=height)


def best_face(face, model_version: str, *, quality: float | None = None, snapshot_key: str = "",
              frame: int = 0, second: float = 0) -> pb.BestFace:
    return pb.BestFace(
        embedding=face.embedding, model_version=model_version, quality=face.quality if quality is None else quality,
        confidence=face.confidence, box=box(*face.box), snapshot_key=snapshot_key, frame_number=frame,
        capture_time=at(second), landmarks=[common_pb2.Point(x=x, y=y) for x, y in face.landmarks])


def person(track_id: str, kind=pb.TRACK_UPDATE_KIND_START, *, second: float = 0, frame: int = 0,
           confidence: float = 0.9) -> pb.TrackUpdate:
    return pb.TrackUpdate(track_id=track_id, kind=kind, object_class=pb.OBJECT_CLASS_PERSON, box=box(),
                          confidence=confidence, frame_number=frame, capture_time=at(second))


def vehicle(track_id: str, label: str = "car", kind=pb.TRACK_UPDATE_KIND_START, *, second: float = 0,
            frame: int = 0, confidence: float = 0.8, feet: tuple[float, float] = (0.2, 0.6)) -> pb.TrackUpdate:
    """A vehicle track's update: a box wider than tall whose bottom centre (wheels) is at feet."""
    width, height = 0.3, 0.2
    return pb.TrackUpdate(track_id=track_id, kind=kind, object_class=pb.OBJECT_CLASS_VEHICLE,
                          box=box(feet[0] - width / 2, feet[1] - height, width, height), confidence=confidence,
                          frame_number=frame, capture_time=at(second), label=label)


def face_track(track_id: str, face: pb.BestFace | None, kind=pb.TRACK_UPDATE_KIND_START, *, second: float = 0,
               frame: int = 0, parent: str = "") -> pb.TrackUpdate:
    update = pb.TrackUpdate(track_id=track_id, kind=kind, object_class=pb.OBJECT_CLASS_FACE,
                            box=box(0.2, 0.1, 0.1, 0.15), confidence=0.95, frame_number=frame,
                            capture_time=at(second), parent_track_id=parent)
    if face is not None:
        update.best_face.CopyFrom(face)
    return update


def batch(camera_id, updates, *, sequence: int = 1, key: str | None = None) -> pb.PublishRequest:
    return pb.PublishRequest(batch=pb.TrackBatch(
        node_id=NODE_ID, camera_id=str(camera_id), sequence=sequence,
        idempotency_key=key or f"{NODE_ID}:{camera_id}:{uuid.uuid4().hex}", frame_width=1920, frame_height=1080,
        updates=updates))


async def publish(stub, metadata, *requests: pb.PublishRequest) -> list[pb.PublishResponse]:
    """Send the batches on one stream, one at a time, and return their acks."""
    call = stub.Publish(metadata=metadata)
    acks = []
    for request in requests:
        await call.write(request)
        acks.append(await call.read())
    await call.done_writing()
    return acks


async def accepted(stub, metadata, *requests: pb.PublishRequest) -> None:
    acks = await publish(stub, metadata, *requests)
    assert [a.status for a in acks] == [pb.PUBLISH_STATUS_ACCEPTED] * len(requests), acks


async def read_events(call, count: int, timeout_s: float = 20.0) -> list[event_pb.SubscribeResponse]:
    """The next `count` event messages of a Subscribe call, skipping keepalives."""
    found = []
    async with asyncio.timeout(timeout_s):
        while len(found) < count:
            response = await call.read()
            if response.WhichOneof("item") == "event":
                found.append(response)
    return found


async def quiet(call, seconds: float) -> list[event_pb.SubscribeResponse]:
    """Event messages that arrive within `seconds` (expected: none)."""
    found = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                response = await call.read()
                if response.WhichOneof("item") == "event":
                    found.append(response)
    except TimeoutError:
        return found
