"""How many faces a stream embeds per second under the node's rule, measured on people_walk: the
figure the GPU kit's capacity assumes (`--embeds-per-stream-s`).

    .venv/bin/python bench/gpu/embed_rate.py [--video people_walk]

Every frame goes through YuNet (onnxruntime on the prepared model, the node's 640x384 canvas and
detector floor) and the portable backend's gate: score >= 0.5, face height >= 40 px, quality >=
0.5 and better than the track's best by FACE_IMPROVEMENT. Tracks are the video's ground-truth
walks (a detection joins the walk whose true box it overlaps most, IoU >= 0.3): an ideal tracker;
a fragmenting one embeds more (each new track's first good face)."""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import onnxruntime as ort

from vigil.models.detection import decode, detector_blob, letterbox, to_detected_faces
from vigil.models.quality import face_quality
from vigil.pipeline.node import FACE_DETECTOR_FLOOR
from vigil.pipeline.streams import ProcessingSettings
from vigil.pipeline.tracks import FACE_IMPROVEMENT
from vigil.samples import load_sample_videos
from vigil.settings import load_settings

CANVAS = (640, 384)
MATCH_IOU = 0.3


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax1, bx1) - max(a[0], b[0])) * max(0.0, min(ay1, by1) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def measure(video, model: Path) -> dict:
    gate = ProcessingSettings()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    best: dict[int, float] = {}
    embeds: dict[int, int] = {}
    unmatched = frames = 0
    with av.open(str(video.path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            image = frame.to_ndarray(format="bgr24")
            boxed = letterbox(image, CANVAS)
            names = [o.name for o in session.get_outputs()]
            outputs = dict(zip(names, session.run(None, {"input": detector_blob([boxed.canvas])}), strict=True))
            rows = decode({k: v[0] for k, v in outputs.items()}, CANVAS, score_threshold=FACE_DETECTOR_FLOOR)
            truth = video.appearances_at(index)
            for face in to_detected_faces(rows, boxed.scale, (image.shape[1], image.shape[0])):
                if face.score < gate.min_detection_confidence or face.box[3] < gate.min_face_size:
                    continue
                overlaps = [(iou(face.box, box.box), a.index) for a, box in truth]
                overlap, walk = max(overlaps, default=(0.0, -1))
                if overlap < MATCH_IOU:
                    unmatched += 1
                    continue
                quality = face_quality(image, face).score
                floor = best[walk] + FACE_IMPROVEMENT if walk in best else -1.0
                if quality >= gate.min_face_quality and quality > floor:
                    best[walk] = quality
                    embeds[walk] = embeds.get(walk, 0) + 1
            frames += 1
    seconds = frames / video.fps
    total = sum(embeds.values())
    return {"video": video.name, "frames": frames, "seconds": seconds, "walks": len(video.appearances),
            "embeddings": total, "per_walk": embeds, "unmatched_detections": unmatched,
            "embeds_per_stream_s": total / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default="people_walk")
    parser.add_argument("--model-repository", type=Path, help="prepared repository (default: the setting)")
    parser.add_argument("--media-cache", type=Path)
    args = parser.parse_args()
    repo = args.model_repository or Path(load_settings().triton.model_repository)
    video = load_sample_videos(args.media_cache)[args.video]
    result = measure(video, repo / "face_detector" / "1" / "model.onnx")
    print(f"{result['video']}: {result['frames']} frames ({result['seconds']:.1f} s), {result['walks']} walks, "
          f"{result['embeddings']} embeddings {result['per_walk']} -> {result['embeds_per_stream_s']:.2f} "
          f"per stream-second; {result['unmatched_detections']} detections matched no walk")


if __name__ == "__main__":
    main()
