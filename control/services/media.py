"""MediaService: the index of snapshots and clips in object storage, and presigned download URLs for
them and for enrolled face images. Clips are cut by the pipeline node running the camera from its
ring buffer of encoded video (storage/repositories/clips.py describes their life); RequestClip
queues one, GetClip follows it to READY (its media item) or FAILED."""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import UTC, datetime, timedelta

from vigil.api.v1 import media_pb2 as pb
from vigil.api.v1 import media_pb2_grpc
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.request_checks import (
    api_token,
    enum_label,
    id_list,
    instant,
    page_request,
    required_id,
    time_bounds,
)
from vigil.control.rpc import rpc
from vigil.control.transactions import CallerDatabase
from vigil.errors import InvalidArgument, NotFound
from vigil.settings import ControlSettings
from vigil.storage.objectstore import ObjectNotFound, ObjectStore, StoredObject
from vigil.storage.repositories.alerts import AlertRepository
from vigil.storage.repositories.clips import ClipRepository, ClipRequest
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.faces import FaceEmbeddingRepository
from vigil.storage.repositories.media import MediaFile, MediaFileRepository
from vigil.storage.repositories.sites import CameraRepository

MEDIA_TYPE = EnumMap(pb.MediaType, "MEDIA_TYPE_", "media_types")
URL_LIFETIMES_S = (60, 7 * 24 * 3600)
CLOCK_SKEW = timedelta(seconds=5)  # between the caller's clock and ours
# media_files keeps only the kind of file; snapshots are JPEG and clips MP4 unless the name says otherwise
DEFAULT_CONTENT_TYPES = {"image": "image/jpeg", "video": "video/mp4"}
CLIP_STATE = {"pending": pb.CLIP_STATE_PENDING, "processing": pb.CLIP_STATE_PROCESSING,
              "ready": pb.CLIP_STATE_READY, "failed": pb.CLIP_STATE_FAILED}


def content_type_of(media: MediaFile) -> str:
    guessed, _ = mimetypes.guess_type(media.storage_path)
    return guessed if guessed and guessed.startswith(f"{media.file_type}/") else DEFAULT_CONTENT_TYPES[media.file_type]


def media_message(m: MediaFile) -> pb.Media:
    return pb.Media(id=str(m.id), media_type=MEDIA_TYPE.number(m.file_type), content_type=content_type_of(m),
                    storage_path=m.storage_path, size_bytes=m.file_size, checksum=m.checksum,
                    camera_id=str(m.camera_id), event_id=text(m.event_id), capture_time=timestamp(m.timestamp),
                    retention_until=timestamp(m.retention_until), create_time=timestamp(m.created_at))


class MediaService(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, db: CallerDatabase, objects: ObjectStore, settings: ControlSettings):
        self.db = db
        self.objects = objects
        self.settings = settings

    @rpc("media", "read")
    async def GetMedia(self, request, context):
        media_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            return pb.GetMediaResponse(media=media_message(await MediaFileRepository(tx.conn).get(media_id)))

    @rpc("media", "read")
    async def ListMedia(self, request, context):
        since, until = time_bounds(request, "time_range")
        filters = {
            "camera_ids": id_list("camera_ids", request.camera_ids),
            "event_id": required_id("event_id", request.event_id) if request.event_id else None,
            "file_types": [enum_label(MEDIA_TYPE, t, f"media_types[{i}]") for i, t in enumerate(request.media_types)],
            "since": since, "until": until,
        }
        async with self.db.transaction() as tx:
            page = await MediaFileRepository(tx.conn).list(**filters, **page_request(request))
            return pb.ListMediaResponse(media=[media_message(m) for m in page.items],
                                        next_page_token=api_token(request, page.next_page_token))

    @rpc("media", "read")
    async def GetMediaUrl(self, request, context):
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgument("target", "set media_id or face_id")
        target_id = required_id(target, getattr(request, target))
        lifetime = self._url_lifetime(request)
        async with self.db.transaction() as tx:
            if target == "media_id":
                key = (await MediaFileRepository(tx.conn).get(target_id)).storage_path
            else:
                key = (await FaceEmbeddingRepository(tx.conn).get(target_id)).source_image_path
        stored = await self._stat(key)
        expire_time = datetime.now(UTC) + lifetime  # taken before signing: the URL lives at least this long
        url = await asyncio.to_thread(self.objects.presigned_get, key, lifetime)
        return pb.GetMediaUrlResponse(url=url, expire_time=timestamp(expire_time), content_type=stored.content_type)

    def _url_lifetime(self, request) -> timedelta:
        if not request.HasField("expires_in"):
            return timedelta(seconds=self.settings.presigned_url_ttl_s)
        seconds = request.expires_in.seconds + request.expires_in.nanos / 1e9
        shortest, longest = URL_LIFETIMES_S
        if not shortest <= seconds <= longest:
            raise InvalidArgument("expires_in", "must be between 1 minute and 7 days")
        return timedelta(seconds=seconds)

    async def _stat(self, key: str) -> StoredObject:
        """The object's metadata; a URL to an object that is gone would only answer 404."""
        try:
            return await asyncio.to_thread(self.objects.stat, key)
        except ObjectNotFound:
            raise NotFound("media object", key) from None

    @rpc("media", "write")
    async def RequestClip(self, request, context):
        camera_id = required_id("camera_id", request.camera_id)
        start, end = instant(request, "start_time"), instant(request, "end_time")
        if start is None:
            raise InvalidArgument("start_time", "is required")
        if end is None:
            raise InvalidArgument("end_time", "is required")
        if end > datetime.now(UTC) + CLOCK_SKEW:
            raise InvalidArgument("end_time", "must not be in the future")
        event_id = required_id("event_id", request.event_id) if request.event_id else None
        alert_id = required_id("alert_id", request.alert_id) if request.alert_id else None
        async with self.db.transaction() as tx:
            await CameraRepository(tx.conn).get(camera_id)
            if alert_id is not None and (await AlertRepository(tx.conn).get(alert_id)).camera_id != camera_id:
                raise InvalidArgument("alert_id", f"alert {alert_id} is not of camera {camera_id}")
            if event_id is not None and (await EventRepository(tx.conn).get(event_id)).camera_id != camera_id:
                raise InvalidArgument("event_id", f"event {event_id} is not of camera {camera_id}")
            clip = await ClipRepository(tx.conn).create(camera_id, start, end, event_id=event_id, alert_id=alert_id)
            await tx.audit("clip.request", "clip", clip.id, {"camera_id": str(camera_id)})
        return pb.RequestClipResponse(clip=clip_message(clip))

    @rpc("media", "read")
    async def GetClip(self, request, context):
        clip_id = required_id("id", request.id)
        async with self.db.transaction() as tx:
            clip = await ClipRepository(tx.conn).get(clip_id)
            await CameraRepository(tx.conn).get(clip.camera_id)
        return pb.GetClipResponse(clip=clip_message(clip))


def clip_message(c: ClipRequest) -> pb.Clip:
    message = pb.Clip(id=str(c.id), camera_id=str(c.camera_id), event_id=text(c.event_id), alert_id=text(c.alert_id),
                      start_time=timestamp(c.start_time), end_time=timestamp(c.end_time), state=CLIP_STATE[c.state],
                      format="mp4", media_id=text(c.media_file_id), size_bytes=c.size_bytes or 0,
                      error=c.error or "", create_time=timestamp(c.created_at),
                      complete_time=timestamp(c.completed_at))
    if c.duration is not None:
        message.duration.FromTimedelta(timedelta(seconds=float(c.duration)))
    return message


SERVICE = (MediaService, media_pb2_grpc.add_MediaServiceServicer_to_server, "vigil.v1.MediaService")
