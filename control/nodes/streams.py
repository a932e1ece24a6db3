"""What a node is told about each camera it runs (StreamAssignment), and the changes to a node's
set of streams between two looks at stream_assignments (AssignmentTracker)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from google.protobuf import duration_pb2

from vigil.api.v1 import node_pb2 as pb
from vigil.logs import get_logger
from vigil.storage.crypto import SecretBox, SecretError
from vigil.storage.repositories.nodes import AssignedStream, StreamAssignmentRepository
from vigil.storage.repositories.sites import DvrRepository

log = get_logger("vigil.control.nodes")

# Server defaults for what a camera's config leaves unset (camera.proto CameraConfig documents them).
DEFAULT_SENSITIVITY = 0.5  # minimum detection confidence = 1 - sensitivity
DEFAULT_MIN_FACE_SIZE = 40
MIN_FACE_QUALITY = 0.5
NIGHT_MIN_FACE_QUALITY = 0.35  # night (IR) mode relaxes the face quality gate
TRACK_UPDATE_INTERVAL_MS = 200


def pipeline_settings(config: dict[str, Any]) -> pb.PipelineSettings:
    sensitivity = config.get("sensitivity", DEFAULT_SENSITIVITY)
    return pb.PipelineSettings(
        detection_enabled=config.get("detection_enabled", True),
        min_detection_confidence=round(1.0 - float(sensitivity), 6),
        min_face_size=int(config.get("min_face_size", DEFAULT_MIN_FACE_SIZE)),
        min_face_quality=NIGHT_MIN_FACE_QUALITY if config.get("night_mode") else MIN_FACE_QUALITY,
        max_inference_fps=0.0,
        track_update_interval=duration_pb2.Duration(nanos=TRACK_UPDATE_INTERVAL_MS * 1_000_000),
        face_embedding_enabled=True,
        snapshots_enabled=True,
        recording_enabled=config.get("recording_enabled", True),
        codec=config.get("codec") or "",
    )


async def stream_assignment(conn: psycopg.AsyncConnection, secrets: SecretBox,
                            stream: AssignedStream) -> pb.StreamAssignment:
    assignment = pb.StreamAssignment(camera_id=str(stream.camera_id), site_id=str(stream.site_id),
                                     source_url=stream.rtsp_url or "", fps=stream.fps or 0,
                                     settings=pipeline_settings(stream.config or {}))
    try:
        login = await DvrRepository(conn, secrets).credentials(stream.dvr_id)
    except SecretError as exc:
        # one DVR's unreadable secret must not cut the node off from all its streams: the stream
        # is sent without credentials and fails at the source, which its StreamStats report
        log.error("DVR credentials cannot be decrypted; stream sent without them", camera_id=str(stream.camera_id),
                  dvr_id=str(stream.dvr_id), error=str(exc))
        return assignment
    if login.username is not None or login.password is not None:
        assignment.credentials.CopyFrom(pb.StreamCredentials(username=login.username or "",
                                                             password=login.password or ""))
    return assignment


class AssignmentTracker:
    """A node's streams as last sent; `changes()` reads them again and returns the difference."""

    def __init__(self, node_id: UUID, secrets: SecretBox):
        self.node_id = node_id
        self.secrets = secrets
        self._sent: dict[UUID, tuple[tuple, pb.StreamAssignment]] = {}

    async def changes(self, conn: psycopg.AsyncConnection) -> list[pb.AssignmentChange]:
        """REMOVEs first (they free the node's capacity), then ADDs and UPDATEs in assignment order."""
        current: dict[UUID, tuple[tuple, pb.StreamAssignment]] = {}
        added: list[pb.AssignmentChange] = []
        for stream in await StreamAssignmentRepository(conn).of_node(self.node_id):
            before = self._sent.get(stream.camera_id)
            if before is not None and before[0] == stream.version:
                current[stream.camera_id] = before  # camera and DVR unchanged: nothing to rebuild or decrypt
                continue
            assignment = await stream_assignment(conn, self.secrets, stream)
            current[stream.camera_id] = (stream.version, assignment)
            if before is None:
                added.append(pb.AssignmentChange(kind=pb.ASSIGNMENT_CHANGE_KIND_ADD, camera_id=str(stream.camera_id),
                                                 assignment=assignment))
            elif before[1] != assignment:  # e.g. the camera's name changed: nothing the node uses
                added.append(pb.AssignmentChange(kind=pb.ASSIGNMENT_CHANGE_KIND_UPDATE,
                                                 camera_id=str(stream.camera_id), assignment=assignment))
        removed = [pb.AssignmentChange(kind=pb.ASSIGNMENT_CHANGE_KIND_REMOVE, camera_id=str(camera_id))
                   for camera_id in self._sent if camera_id not in current]
        self._sent = current
        return removed + added
