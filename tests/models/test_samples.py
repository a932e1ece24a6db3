"""The face_recognition photos come from PyPI once and are then served from the cache."""

from __future__ import annotations

from tests.fixtures.stack import MEDIA_CACHE
from vigil.models.samples import face_photos


def test_photos_are_cached(photos):
    assert {"obama", "obama2", "obama3", "obama_partial_face", "obama_partial_face2", "biden", "32bit"} <= set(photos)
    stamps = {name: path.stat().st_mtime_ns for name, path in photos.items()}
    again = face_photos(MEDIA_CACHE)
    assert again == photos
    assert {name: path.stat().st_mtime_ns for name, path in again.items()} == stamps
    assert photos["obama"].read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
