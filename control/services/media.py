"""MediaService: the index of snapshots and clips in object storage, and presigned download URLs for
them and for enrolled face images. Clips are cut from the pipeline nodes' recording ring buffers,
which do not exist yet: RequestClip and GetClip say so (UNIMPLEMENTED)."""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import datetime, timedelta, timezone

import grpc

from vigil.api.v1 import media_pb2 as pb
from vigil.api.v1 import media_pb2_grpc
from vigil.control.convert import EnumMap, text, timestamp
from vigil.control.rpc import rpc
from vigil.control.request_checks import enum_label, id_list, page_request, required_id, time_bounds
from vigil.storage.objectstore import ObjectNotFound, StoredObject
from vigil.storage.repositories.base import InvalidArgument, NotFound
from vigil.storage.repositories.faces import FaceEmbeddingRepository
from vigil.storage.repositories.media import MediaFile, MediaFileRepository

MEDIA_TYPE = EnumMap(pb.MediaType, "MEDIA_TYPE_", "media_types")
URL_LIFETIMES_S = (60, 7 * 24 * 3600)
# media_files keeps only the kind of file; snapshots are JPEG and clips MP4 unless the name says otherwise
DEFAULT_CONTENT_TYPES = {"image": "image/jpeg", "video": "video/mp4"}
CLIPS_NOT_YET = ("clips are not produced yet: cutting them needs the pipeline nodes' recording ring buffers, "
                 "which arrive with the event-clip work")


def content_type_of(media: MediaFile) -> str:
    guessed, _ = mimetypes.guess_type(media.storage_path)
    return guessed if guessed and guessed.startswith(f"{media.file_type}/") else DEFAULT_CONTENT_TYPES[media.file_type]


def media_message(m: MediaFile) -> pb.Media:
    return pb.Media(id=str(m.id), media_type=MEDIA_TYPE.number(m.file_type), content_type=content_type_of(m),
                    storage_path=m.storage_path, size_bytes=m.file_size, checksum=m.checksum,
                    camera_id=str(m.camera_id), event_id=text(m.event_id), capture_time=timestamp(m.timestamp),
                    retention_until=timestamp(m.retention_until), create_time=timestamp(m.created_at))


class MediaService(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, app):
        self.app = app

    @rpc("media", "read")
    async def GetMedia(self, request, context):
        media_id = required_id("id", request.id)
        async with self.app.transaction() as tx:
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
        async with self.app.transaction() as tx:
            page = await MediaFileRepository(tx.conn).list(**filters, **page_request(request))
            return pb.ListMediaResponse(media=[media_message(m) for m in page.items],
                                        next_page_token=page.next_page_token or "")

    @rpc("media", "read")
    async def GetMediaUrl(self, request, context):
        target = request.WhichOneof("target")
        if target is None:
            raise InvalidArgument("target", "set media_id or face_id")
        target_id = required_id(target, getattr(request, target))
        lifetime = self._url_lifetime(request)
        async with self.app.transaction() as tx:
            if target == "media_id":
                key = (await MediaFileRepository(tx.conn).get(target_id)).storage_path
            else:
                key = (await FaceEmbeddingRepository(tx.conn).get(target_id)).source_image_path
        stored = await self._stat(key)
        expire_time = datetime.now(timezone.utc) + lifetime  # taken before signing: the URL lives at least this long
        url = await asyncio.to_thread(self.app.objects.presigned_get, key, lifetime)
        return pb.GetMediaUrlResponse(url=url, expire_time=timestamp(expire_time), content_type=stored.content_type)

    def _url_lifetime(self, request) -> timedelta:
        if not request.HasField("expires_in"):
            return timedelta(seconds=self.app.settings.control.presigned_url_ttl_s)
        seconds = request.expires_in.seconds + request.expires_in.nanos / 1e9
        shortest, longest = URL_LIFETIMES_S
        if not shortest <= seconds <= longest:
            raise InvalidArgument("expires_in", "must be between 1 minute and 7 days")
        return timedelta(seconds=seconds)

    async def _stat(self, key: str) -> StoredObject:
        """The object's metadata; a URL to an object that is gone would only answer 404."""
        try:
            return await asyncio.to_thread(self.app.objects.stat, key)
        except ObjectNotFound:
            raise NotFound("media object", key) from None

    @rpc("media", "write")
    async def RequestClip(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, CLIPS_NOT_YET)

    @rpc("media", "read")
    async def GetClip(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, CLIPS_NOT_YET)


SERVICE = (MediaService, media_pb2_grpc.add_MediaServiceServicer_to_server, "vigil.v1.MediaService")
