"""Streams of 1080p30 one machine sustains, from the measured rates: every frame decoded, letterboxed
and run through the face and object detectors; only improving faces aligned and embedded
(`embeds_per_stream_s`, an assumption the report states, with the figure at other rates beside it).
On the GPU, NVDEC is an engine of its own, so decode bounds the count separately from the compute
(pre-processing, inference, alignment share the SMs and add up); on the CPU everything shares
the cores and adds up. Rates are each stage's best over the batch sizes measured (a node with
many streams fills its batches)."""

from __future__ import annotations

FPS = 30.0
EMBED_RATES = (0.5, 2.0, 5.0, 10.0)  # improving faces per stream per second, for the sensitivity table
PER_FRAME = ("preprocess", "face_detector", "object_detector")
PER_FACE = ("align", "face_embedder")


def streams(rates: dict[str, float | None], embeds_per_stream_s: float, *, decode_separate: bool) -> dict:
    """rates: items/s per stage ("decode", "preprocess", models, "align"); None: not measured.
    Returns the sustainable streams, what bounds them, each stage's share of a stream's second."""
    seconds = {}  # machine-seconds one stream's second of video costs, per stage
    missing = []
    for stage in ("decode", *PER_FRAME, *PER_FACE):
        rate = rates.get(stage)
        if not rate:
            missing.append(stage)
            continue
        seconds[stage] = (FPS if stage in ("decode", *PER_FRAME) else embeds_per_stream_s) / rate
    compute = sum(s for stage, s in seconds.items() if not (decode_separate and stage == "decode"))
    bounds = {"compute": 1.0 / compute if compute else None}
    if decode_separate and "decode" in seconds:
        bounds["decode"] = 1.0 / seconds["decode"]
    limit = min((b for b in bounds.values() if b), default=None)
    return {"streams": limit, "bound_by": min(bounds, key=lambda k: bounds[k] or float("inf")),
            "bounds": bounds, "ms_per_stream_second": {k: round(v * 1000, 3) for k, v in seconds.items()},
            "not_measured": missing}


def compare(cpu_rates: dict, gpu_rates: dict | None, embeds_per_stream_s: float) -> dict:
    report = {
        "assumptions": {"fps": FPS, "resolution": "1920x1080", "embeds_per_stream_s": embeds_per_stream_s,
                        "detection": "face and object detector on every frame",
                        "embedding": "only faces that improve on their track's best (aligned + embedded)"},
        "cpu": streams(cpu_rates, embeds_per_stream_s, decode_separate=False),
        "gpu": streams(gpu_rates, embeds_per_stream_s, decode_separate=True) if gpu_rates else None,
    }
    report["gpu_over_cpu"] = _ratio(report["gpu"], report["cpu"])
    report["by_embed_rate"] = [
        {"embeds_per_stream_s": e,
         "cpu_streams": streams(cpu_rates, e, decode_separate=False)["streams"],
         "gpu_streams": streams(gpu_rates, e, decode_separate=True)["streams"] if gpu_rates else None}
        for e in EMBED_RATES]
    return report


def _ratio(gpu: dict | None, cpu: dict) -> float | None:
    if not gpu or not gpu["streams"] or not cpu["streams"]:
        return None
    return gpu["streams"] / cpu["streams"]
