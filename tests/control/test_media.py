"""MediaService through a real gRPC channel: the media index, presigned URLs that really download
from the object store, and clip requests."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf import duration_pb2

from tests.control.test_persons import invalid, refused
from tests.fixtures.control import database
from tests.storage.builders import make_camera
from vigil.api.v1 import media_pb2 as pb
from vigil.storage.repositories.faces import FaceEmbeddingRepository, ModelVersionRepository
from vigil.storage.repositories.media import MediaFileRepository
from vigil.storage.repositories.persons import PersonRepository


@pytest.fixture(scope="module")
def viewer(as_role):
    return as_role("viewer")


@pytest.fixture(scope="module")
async def library(app):
    """A camera with a snapshot and a clip of one event and an older snapshot, all stored as objects."""
    now = datetime.now(UTC).replace(microsecond=0)
    event_id = uuid.uuid4()
    async with database(app) as conn:
        camera = await make_camera(conn, app.secrets)
        repo = MediaFileRepository(conn)

        async def stored(name: str, data: bytes, content_type: str, age: timedelta, **kwargs):
            key = f"{camera.id}/{name}"
            obj = app.objects.put(key, data, content_type=content_type)
            return await repo.register(camera.id, key, checksum=obj.sha256, file_size=obj.size,
                                       mime_type=content_type, timestamp=now - age,
                                       retention_until=now + timedelta(days=30), **kwargs)

        return {
            "camera": camera, "event_id": event_id, "now": now,
            "old": await stored("old.jpg", b"\xff\xd8old snapshot", "image/jpeg", timedelta(hours=2)),
            "clip": await stored("clip.mp4", b"mp4 clip bytes" * 50, "video/mp4", timedelta(hours=1),
                                 event_id=event_id),
            "snapshot": await stored("snapshot.jpg", b"\xff\xd8event snapshot", "image/jpeg", timedelta(minutes=59),
                                     event_id=event_id),
        }


async def download(url: str) -> bytes:
    def fetch():
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()
    return await asyncio.to_thread(fetch)


async def test_get_media_round_trip(media, viewer, library):
    clip = library["clip"]
    got = (await media.GetMedia(pb.GetMediaRequest(id=str(clip.id)), metadata=viewer)).media
    assert (got.id, got.media_type, got.content_type, got.storage_path) == \
        (str(clip.id), pb.MEDIA_TYPE_VIDEO, "video/mp4", clip.storage_path)
    assert (got.size_bytes, got.checksum, got.camera_id, got.event_id) == \
        (clip.file_size, clip.checksum, str(library["camera"].id), str(library["event_id"]))
    assert got.capture_time.ToDatetime(tzinfo=UTC) == library["now"] - timedelta(hours=1)

    err = await refused(media.GetMedia, pb.GetMediaRequest(id=str(uuid.uuid4())), viewer)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await invalid(media.GetMedia, pb.GetMediaRequest(id="snapshot.jpg"), viewer, "id")


async def test_list_media_newest_first_with_paging_and_filters(media, viewer, library):
    camera = str(library["camera"].id)
    seen, token = [], ""
    while True:
        page = await media.ListMedia(pb.ListMediaRequest(camera_ids=[camera], page_size=1, page_token=token),
                                     metadata=viewer)
        seen.extend(m.id for m in page.media)
        token = page.next_page_token
        if not token:
            break
    assert seen == [str(library[name].id) for name in ("snapshot", "clip", "old")]

    async def ids(**filters) -> list[str]:
        return [m.id for m in (await media.ListMedia(pb.ListMediaRequest(camera_ids=[camera], **filters),
                                                     metadata=viewer)).media]

    assert await ids(event_id=str(library["event_id"])) == [str(library["snapshot"].id), str(library["clip"].id)]
    assert await ids(media_types=[pb.MEDIA_TYPE_VIDEO]) == [str(library["clip"].id)]
    window = pb.ListMediaRequest(camera_ids=[camera])
    window.time_range.start_time.FromDatetime(library["now"] - timedelta(hours=1))
    window.time_range.end_time.FromDatetime(library["now"] - timedelta(minutes=59))
    assert [m.id for m in (await media.ListMedia(window, metadata=viewer)).media] == [str(library["clip"].id)]

    backwards = pb.ListMediaRequest()
    backwards.time_range.start_time.FromDatetime(library["now"])
    backwards.time_range.end_time.FromDatetime(library["now"])
    for request, field in [(backwards, "time_range.end_time"),
                           (pb.ListMediaRequest(media_types=[pb.MEDIA_TYPE_UNSPECIFIED]), "media_types[0]"),
                           (pb.ListMediaRequest(camera_ids=[camera, "cam-2"]), "camera_ids[1]"),
                           (pb.ListMediaRequest(event_id="event"), "event_id"),
                           (pb.ListMediaRequest(page_size=-1), "page_size"),
                           (pb.ListMediaRequest(page_token="%%%"), "page_token")]:
        await invalid(media.ListMedia, request, viewer, field)


async def test_media_url_downloads_the_object_until_it_expires(media, viewer, library, app):
    snapshot = library["snapshot"]
    before = datetime.now(UTC)
    reply = await media.GetMediaUrl(pb.GetMediaUrlRequest(media_id=str(snapshot.id)), metadata=viewer)
    assert await download(reply.url) == app.objects.get(snapshot.storage_path) == b"\xff\xd8event snapshot"
    assert reply.content_type == "image/jpeg"
    ttl = timedelta(seconds=app.settings.control.presigned_url_ttl_s)
    expires = reply.expire_time.ToDatetime(tzinfo=UTC)
    assert before + ttl <= expires <= datetime.now(UTC) + ttl

    short = pb.GetMediaUrlRequest(media_id=str(library["clip"].id), expires_in=duration_pb2.Duration(seconds=120))
    reply = await media.GetMediaUrl(short, metadata=viewer)
    assert "X-Amz-Expires=120" in reply.url and reply.content_type == "video/mp4"
    assert await download(reply.url) == b"mp4 clip bytes" * 50
    assert reply.expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC) <= timedelta(seconds=120)


async def test_media_url_of_an_enrolled_face_image(media, viewer, app):
    key = f"faces/{uuid.uuid4()}.png"
    app.objects.put(key, b"\x89PNG face crop", content_type="image/png")
    async with database(app) as conn:
        person = await PersonRepository(conn).create(name="Face owner")
        version = await ModelVersionRepository(conn).register(f"media-test-{uuid.uuid4().hex[:8]}", 4, 0.4)
        face = await FaceEmbeddingRepository(conn).insert(person.id, version, np.ones(4), key)
    reply = await media.GetMediaUrl(pb.GetMediaUrlRequest(face_id=str(face.id)), metadata=viewer)
    assert reply.content_type == "image/png" and await download(reply.url) == b"\x89PNG face crop"


async def test_media_url_refusals(media, viewer, library, app):
    for request, field in [(pb.GetMediaUrlRequest(), "target"),
                           (pb.GetMediaUrlRequest(media_id="x"), "media_id"),
                           (pb.GetMediaUrlRequest(face_id=""), "face_id"),
                           (pb.GetMediaUrlRequest(media_id=str(library["old"].id),
                                                  expires_in=duration_pb2.Duration(seconds=59)), "expires_in"),
                           (pb.GetMediaUrlRequest(media_id=str(library["old"].id),
                                                  expires_in=duration_pb2.Duration(seconds=8 * 86400)),
                            "expires_in")]:
        await invalid(media.GetMediaUrl, request, viewer, field)
    for request in (pb.GetMediaUrlRequest(media_id=str(uuid.uuid4())),
                    pb.GetMediaUrlRequest(face_id=str(uuid.uuid4()))):
        assert (await refused(media.GetMediaUrl, request, viewer)).code() == grpc.StatusCode.NOT_FOUND

    async with database(app) as conn:  # an index row whose object is gone
        orphan = await MediaFileRepository(conn).register(
            (await make_camera(conn, app.secrets)).id, f"gone/{uuid.uuid4()}.jpg", checksum="0" * 64, file_size=1,
            mime_type="image/jpeg", timestamp=library["now"], retention_until=library["now"] + timedelta(days=1))
    err = await refused(media.GetMediaUrl, pb.GetMediaUrlRequest(media_id=str(orphan.id)), viewer)
    assert err.code() == grpc.StatusCode.NOT_FOUND and orphan.storage_path in err.details()


async def test_clip_requests_are_checked_and_queued(media, as_role, library):
    """Clips themselves are cut by pipeline nodes (tests/ops/test_clips.py); here: the request."""
    camera = str(library["camera"].id)
    now = datetime.now(UTC)
    writer = as_role("api_client")

    def ask(**fields):
        request = pb.RequestClipRequest(camera_id=camera)
        for name in ("start_time", "end_time"):
            if name in fields:
                getattr(request, name).FromDatetime(fields.pop(name))
        request.MergeFrom(pb.RequestClipRequest(**fields))
        return request

    for request, field in (
        (ask(), "start_time"),
        (ask(start_time=now - timedelta(seconds=20)), "end_time"),
        (ask(start_time=now - timedelta(seconds=5), end_time=now - timedelta(seconds=10)), "end_time"),
        (ask(start_time=now - timedelta(minutes=11), end_time=now), "end_time"),
        (ask(start_time=now, end_time=now + timedelta(minutes=1)), "end_time"),
        (ask(start_time=now - timedelta(seconds=9), end_time=now, alert_id="x"), "alert_id"),
    ):
        err = await refused(media.RequestClip, request, writer)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.details(), (field, err.details())
    created = await media.RequestClip(ask(start_time=now - timedelta(seconds=9), end_time=now), metadata=writer)
    assert created.clip.state == pb.CLIP_STATE_PENDING and created.clip.camera_id == camera
    fetched = await media.GetClip(pb.GetClipRequest(id=created.clip.id), metadata=as_role("viewer"))
    assert fetched.clip == created.clip
    err = await refused(media.GetClip, pb.GetClipRequest(id=str(uuid.uuid4())), writer)
    assert err.code() == grpc.StatusCode.NOT_FOUND
