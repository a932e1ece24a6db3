"""Which person and vehicle detector a portable node runs: NanoDet when Triton serves it, HOG (persons
only, with a warning that says what to do) when it does not."""

from __future__ import annotations

import dataclasses

import cv2
import pytest
import structlog

from tests.models.test_objects import MEDIA_CACHE, REFERENCE_FRAME
from vigil.models.objects import ObjectKind
from vigil.pipeline.portable.objects import PreferredObjectDetector
from vigil.samples import load_sample_videos


@pytest.fixture(scope="module")
def street_frame():
    capture = cv2.VideoCapture(str(load_sample_videos(MEDIA_CACHE)["vtest"].path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, REFERENCE_FRAME)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_nanodet_when_served(served_models, endpoints, street_frame):
    detector = PreferredObjectDetector(endpoints, ready_wait_s=60)
    try:
        (found,) = detector.detect_many([street_frame], 0.4)
    finally:
        detector.close()
    assert detector.name == "nanodet"
    assert {o.kind for o in found} == {ObjectKind.PERSON, ObjectKind.VEHICLE}


def test_hog_with_a_warning_when_the_detector_is_not_served(stack, endpoints, street_frame):
    """A Triton that does not answer for object_detector (here: nothing listens at the address)."""
    elsewhere = dataclasses.replace(endpoints, triton_url="127.0.0.1:9")
    detector = PreferredObjectDetector(elsewhere, ready_wait_s=0.5)
    try:
        with structlog.testing.capture_logs() as logs:
            (found,) = detector.detect_many([street_frame], 0.3)
    finally:
        detector.close()
    assert detector.name == "hog"
    assert all(o.kind is ObjectKind.PERSON for o in found)
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "HOG" in warning["event"] and "vigil models prepare" in warning["next_step"]
