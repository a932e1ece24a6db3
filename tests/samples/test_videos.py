"""The sample videos: manifests match the files, and the real face models (YuNet, SFace in the
test stack's Triton) find and recognise the people where the manifest says they are."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from tests.samples.conftest import MEDIA_CACHE, iou
from vigil.samples import WATCHLIST_NAME, load_sample_videos

DETECT_EVERY = 5  # frames between detector samples
RECOGNISE_EVERY = 10


def decoded_frames(path, wanted: set[int] | None = None) -> dict[int, np.ndarray]:
    """BGR frames by index (all, or only those wanted)."""
    out = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if wanted is None or index in wanted:
                out[index] = frame.to_ndarray(format="bgr24")
    return out


@pytest.mark.parametrize("name", ["people_walk", "people_street", "vtest"])
def test_manifest_matches_the_video(sample_videos, name):
    video = sample_videos[name]
    manifest = json.loads(video.manifest_path.read_text())
    assert manifest["frames"] == video.frames and manifest["width"] == video.width
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (video.width, video.height)
        assert stream.codec_context.name == video.codec
        assert float(stream.average_rate) == pytest.approx(video.fps)
        frames = [f for f in container.decode(stream)]
    assert len(frames) == video.frames
    assert frames[-1].to_ndarray(format="bgr24").shape == (video.height, video.width, 3)
    if name != "vtest":
        assert video.codec == "h264"


def test_vtest_is_real_pedestrian_footage(sample_videos):
    vtest = sample_videos["vtest"]
    assert vtest.path.name == "vtest.avi" and vtest.frames > 700 and not vtest.appearances
    first, last = decoded_frames(vtest.path, {0, vtest.frames - 1}).values()
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 1  # people moved: not a still


def test_the_script_keeps_its_promises(people_walk):
    assert (people_walk.width, people_walk.height, people_walk.fps) == (1280, 720, 15)
    assert 18 <= people_walk.duration_s <= 22
    assert {"obama", "biden", "astronaut"} <= people_walk.identities()
    on_screen = [len(people_walk.appearances_at(f)) for f in range(people_walk.frames)]
    assert max(on_screen) == 2
    assert on_screen.count(1) > 3 * people_walk.fps  # seconds with one person alone
    obama = [a for a in people_walk.appearances if a.name == "obama"]
    assert len(obama) == 2 and obama[0].last_frame < obama[1].first_frame  # leaves, comes back
    for a in people_walk.appearances:
        assert len(a.faces) == a.last_frame - a.first_frame + 1
        assert [f.frame for f in a.faces] == list(range(a.first_frame, a.last_frame + 1))
        assert a.photo.is_file() and a.photo.name != "obama.jpg"  # the enrolment photo stays out
        assert 90 <= a.faces[0].h <= 160
        xs = [f.x for f in a.faces]
        assert max(abs(np.diff(xs))) < 25  # smooth walking, no teleporting
        assert len(a.in_view()) > 2 * people_walk.fps
    assert people_walk.enrol[WATCHLIST_NAME].name == "obama.jpg"


def test_loading_again_uses_the_cache(sample_videos):
    index = MEDIA_CACHE / "videos.json"
    before = index.stat().st_mtime_ns
    assert load_sample_videos(MEDIA_CACHE) == sample_videos
    assert index.stat().st_mtime_ns == before


def test_yunet_finds_every_face_where_the_manifest_says(people_walk, analyzer):
    wanted = {f.frame for a in people_walk.appearances for f in a.in_view() if f.frame % DETECT_EVERY == 0}
    frames = decoded_frames(people_walk.path, wanted)
    indices = sorted(frames)
    found = dict(zip(indices, analyzer.detect_many([frames[i] for i in indices])))
    rates = {}
    for a in people_walk.appearances:
        sampled = [f for f in a.in_view() if f.frame % DETECT_EVERY == 0]
        hits = sum(
            any(face.score >= 0.9 and iou(face.box, truth.box) >= 0.5 for face in found[truth.frame])
            for truth in sampled
        )
        rates[f"{a.index}:{a.name}"] = hits / len(sampled)
    print("YuNet hit rates", rates)
    assert min(rates.values()) >= 0.8, rates


def test_sface_recognises_obama_and_nobody_else(people_walk, analyzer, served_models):
    threshold = served_models["face_embedder"].match_threshold
    enrol = people_walk.enrol[WATCHLIST_NAME]
    faces = analyzer.detect(enrol)
    reference = analyzer.embed([analyzer.align(enrol, faces[0].landmarks)])[0]

    wanted = {f.frame for a in people_walk.appearances for f in a.in_view() if f.frame % RECOGNISE_EVERY == 0}
    frames = decoded_frames(people_walk.path, wanted)
    similarities = {}
    for a in people_walk.appearances:
        crops = []
        for truth in a.in_view():
            if truth.frame % RECOGNISE_EVERY:
                continue
            match = [f for f in analyzer.detect(frames[truth.frame]) if iou(f.box, truth.box) >= 0.5]
            if match:
                crops.append(analyzer.align(frames[truth.frame], match[0].landmarks))
        assert len(crops) >= 3, f"appearance {a.index} ({a.name}): too few faces found to recognise"
        sims = analyzer.embed(crops) @ reference
        similarities[f"{a.index}:{a.name}"] = (round(float(sims.min()), 3), round(float(np.median(sims)), 3),
                                               round(float(sims.max()), 3))
        if a.name == WATCHLIST_NAME:
            assert np.median(sims) > threshold and (sims > threshold).mean() >= 0.8, (a.name, sims)
        else:
            assert sims.max() < threshold, (a.name, sims)
    print(f"SFace cosine to {enrol.name} (min, median, max), threshold {threshold}:", similarities)
