"""Person-track fragmentation on the street video: how many tracks the portable stages make of the
people who walk through people_street.mp4, per detector, against the walkers counted by hand, and
what each detector costs per frame.

    .venv/bin/python bench/fragmentation.py [--json PATH] [--frames N]

Runs the portable stages (pipeline/portable/analysis.py: detection, ByteTrack per class, the
TrackBook that decides START/END) on every frame of the video in order, one frame per batch,
with the models served by the bench stack's Triton (bench/benchenv.py). Configurations:

- `hog/3`: the detector before issue 15 (OpenCV HOG on every 3rd frame, the old default);
- `nanodet/1`, `nanodet/2`, `nanodet/3`: NanoDet on every frame (the default), every 2nd, every 3rd;
- `hog/3-drop30`, `nanodet/1-drop30`: the same with 30 % of the frames dropped at random (seeded),
  as a loaded node drops them (the demo's node drops 20-40 %).

The reference, bench/data/vtest_walkers.json, was made by hand: every person who appears, with the
frames of each visit (a walker who leaves and comes back has two visits; no tracker can join
them without re-identification). Per configuration: person tracks started, tracks per visit and
per walker (1.0 per visit is the ideal), coverage (the tracks' seconds over the visits' seconds:
how much of the people's time in view a track follows), the mean track length, vehicle tracks,
and the detector's ms per detected frame; ratios against `hog/3`, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
from benchenv import bench_settings, bench_stack

from vigil.api.v1 import ingest_pb2 as pb
from vigil.models.faces import FaceAnalyzer
from vigil.models.object_detector import ObjectDetector
from vigil.pipeline.node import FACE_DETECTOR_FLOOR
from vigil.pipeline.portable.analysis import FrameAnalysis, StreamAnalysis
from vigil.pipeline.portable.hog import HogPersonDetector
from vigil.pipeline.portable.source import Frame
from vigil.pipeline.streams import StreamSpec
from vigil.pipeline.tracks import TrackBook
from vigil.samples import load_sample_videos

GROUND_TRUTH = Path(__file__).resolve().parent / "data" / "vtest_walkers.json"


@dataclass(frozen=True)
class Reference:
    walkers: int
    visits: int
    visible_s: float  # person-seconds in view, summed over the visits

    @classmethod
    def load(cls, fps: float) -> Reference:
        walkers = json.loads(GROUND_TRUTH.read_text())
        visits = [v for w in walkers for v in w.get("segments", [[w["first_frame"], w["last_frame"]]])]
        return cls(len(walkers), len(visits), sum(last - first + 1 for first, last in visits) / fps)


@dataclass(frozen=True)
class Result:
    config: str
    detector: str
    every: int
    dropped: float
    person_tracks: int
    tracks_per_visit: float
    tracks_per_walker: float
    coverage: float
    tracks_over_1s: int
    mean_track_s: float
    vehicle_tracks: int
    detector_ms_per_frame: float
    frames: int


class TimedDetector:
    """Wraps a detector to time its calls."""

    def __init__(self, detector):
        self.detector, self.name, self.seconds, self.calls = detector, detector.name, 0.0, 0

    def detect_many(self, images, min_score):
        started = time.perf_counter()
        try:
            return self.detector.detect_many(images, min_score)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += len(images)


def run(config: str, detector, every: int, analyzer: FaceAnalyzer, path: str, fps: float, limit: int,
        reference: Reference, drop: float = 0.0) -> Result:
    timed = TimedDetector(detector)
    spec = StreamSpec(uuid.uuid4(), None, f"file://{path}", round(fps))
    stream = StreamAnalysis.start(spec, TrackBook("bench"), every)
    stages = FrameAnalysis(analyzer, None, "bench", timed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    updates: list[pb.TrackUpdate] = []
    frames = 0
    dropping = random.Random(15)
    with av.open(path) as container:
        for number, decoded in enumerate(container.decode(video=0)):
            if number >= limit:
                break
            if dropping.random() < drop:
                continue
            frame = Frame(spec.camera_id, number, start + timedelta(seconds=number / fps),
                          decoded.to_ndarray(format="bgr24"))
            (analysed,) = stages.run([(stream, frame)])
            updates += stream.book.observe(frame.number, frame.capture_time, analysed.sightings)
            frames += 1
            if frames % 100 == 0:
                print(f"  {config}: {frames} frames", flush=True)
    return summarise(config, timed, every, drop, updates, frames, reference)


def summarise(config: str, timed: TimedDetector, every: int, drop: float, updates: list[pb.TrackUpdate],
              frames: int, reference: Reference) -> Result:
    spans: dict[str, list[float]] = {}
    classes: dict[str, int] = {}
    for u in updates:
        t = u.capture_time.ToDatetime().timestamp()
        spans.setdefault(u.track_id, [t, t])[1] = t
        classes[u.track_id] = u.object_class
    persons = [tid for tid, c in classes.items() if c == pb.OBJECT_CLASS_PERSON]
    lengths = [spans[tid][1] - spans[tid][0] for tid in persons]
    return Result(
        config=config, detector=timed.name, every=every, dropped=drop, person_tracks=len(persons),
        tracks_per_visit=round(len(persons) / reference.visits, 2),
        tracks_per_walker=round(len(persons) / reference.walkers, 2),
        coverage=round(sum(lengths) / reference.visible_s, 2),
        tracks_over_1s=sum(1 for length in lengths if length >= 1.0),
        mean_track_s=round(sum(lengths) / max(len(lengths), 1), 2),
        vehicle_tracks=sum(1 for c in classes.values() if c == pb.OBJECT_CLASS_VEHICLE),
        detector_ms_per_frame=round(1000 * timed.seconds / max(timed.calls, 1), 1), frames=frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--frames", type=int, default=10_000, help="stop after this many frames")
    args = parser.parse_args()
    settings = bench_settings()
    endpoints = bench_stack(settings, models=True).endpoints
    video = load_sample_videos()["people_street"]
    analyzer = FaceAnalyzer(endpoints, score_threshold=FACE_DETECTOR_FLOOR,
                            canvas_size=settings.node.face_detector_canvas)
    analyzer.wait_until_ready(60)
    nanodet = ObjectDetector(endpoints)
    nanodet.wait_until_ready(60)
    hog = HogPersonDetector()
    configs = [("hog/3", hog, 3, 0.0), ("nanodet/1", nanodet, 1, 0.0), ("nanodet/2", nanodet, 2, 0.0),
               ("nanodet/3", nanodet, 3, 0.0), ("hog/3-drop30", hog, 3, 0.3), ("nanodet/1-drop30", nanodet, 1, 0.3)]
    reference = Reference.load(video.fps)
    results = []
    for name, detector, every, drop in configs:
        print(f"{name}: running", flush=True)
        results.append(run(name, detector, every, analyzer, str(video.path), video.fps, args.frames, reference,
                           drop))
    baseline = results[0]
    print(f"\nreference (by hand): {reference.walkers} walkers, {reference.visits} visits, "
          f"{reference.visible_s:.0f} person-seconds in view; ratios against {baseline.config} in this run")
    print(f"{'config':<17} {'tracks':>6} {'/visit':>7} {'/walker':>8} {'coverage':>9} {'≥1s':>5} {'mean s':>7} "
          f"{'vehicles':>8} {'ms/frame':>9} {'coverage ×':>11} {'ms ×':>6}")
    for r in results:
        print(f"{r.config:<17} {r.person_tracks:>6} {r.tracks_per_visit:>7} {r.tracks_per_walker:>8} "
              f"{r.coverage:>9} {r.tracks_over_1s:>5} {r.mean_track_s:>7} {r.vehicle_tracks:>8} "
              f"{r.detector_ms_per_frame:>9} {r.coverage / max(baseline.coverage, 1e-9):>11.2f} "
              f"{r.detector_ms_per_frame / max(baseline.detector_ms_per_frame, 1e-9):>6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"reference": asdict(reference), "baseline": baseline.config,
                       "results": [asdict(r) for r in results]}, fh, indent=2)
    analyzer.close()
    nanodet.close()


if __name__ == "__main__":
    main()
