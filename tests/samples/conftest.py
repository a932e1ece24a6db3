"""Sample videos for these tests, built once into the repository's .vigil/media (ignored by git),
the same cache the shared `photos` fixture uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.samples import SampleVideo, load_sample_videos

MEDIA_CACHE = Path(__file__).resolve().parents[2] / ".vigil" / "media"


@pytest.fixture(scope="session")
def sample_videos() -> dict[str, SampleVideo]:
    return load_sample_videos(MEDIA_CACHE)


@pytest.fixture(scope="session")
def people_walk(sample_videos) -> SampleVideo:
    return sample_videos["people_walk"]


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)
