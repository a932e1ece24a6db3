"""python -m gpukit: the whole measurement in one run; see bench/gpu/README.md.

Without a usable GPU (no CUDA device, or PyTorch/CuPy/onnx2torch/PyNvVideoCodec missing) it runs
the CPU half and says so: the report's "gpu" holds status "not run" and the reason."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gpukit import KIT_VERSION, align, capacity, decode, models, preprocess

BATCHES = (1, 2, 4, 8, 16, 32, 64)
CARRY = Path(__file__).resolve().parents[1]  # the directory the kit runs from (the carry)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    progress = _Progress(started)
    gpu = _gpu_environment(args.cpu_only)
    progress(f"gpu: {gpu['status']}" + (f" ({gpu['reason']})" if gpu["reason"] else f" ({gpu['device']})"))
    report: dict = {"kit_version": KIT_VERSION, "host": _host(), "gpu": gpu, "settings": _settings(args),
                    "decode": {}, "models": {}, "preprocess": {}, "align": {}}
    cpu_rates: dict[str, float | None] = {}
    gpu_rates: dict[str, float | None] = {}
    use_gpu = gpu["status"] == "ran"

    progress(f"decode on the CPU: {args.clip.name} for {args.decode_seconds:g} s")
    report["decode"]["cpu"] = _streams_worth(decode.cpu_decode(args.clip, args.decode_seconds))
    cpu_rates["decode"] = report["decode"]["cpu"]["fps"]
    report["decode"]["gpu"] = None
    if use_gpu:
        progress(f"decode on NVDEC: {args.nvdec_sessions} sessions for {args.decode_seconds:g} s")
        report["decode"]["gpu"] = _attempt(gpu, "decode", lambda: _streams_worth(
            decode.nvdec_decode(args.clip, args.decode_seconds, args.nvdec_sessions)))
        gpu_rates["decode"] = (report["decode"]["gpu"] or {}).get("fps")

    for spec in models.SPECS:
        entry = report["models"][spec.name] = _measure_model(spec, args, use_gpu, gpu, progress)
        cpu_rates[spec.name] = (entry.get("cpu") or {}).get("best", {}).get("items_per_s")
        gpu_rates[spec.name] = max((m["best"]["items_per_s"] for m in (entry.get("gpu"), entry.get("gpu_tensorrt"))
                                    if m), default=None)  # the faster GPU runtime measured

    progress("pre-processing (colour conversion, letterbox onto both canvases)")
    report["preprocess"] = _measure_preprocess(args, use_gpu, gpu)
    cpu_rates["preprocess"] = report["preprocess"]["cpu"]["items_per_s"]
    gpu_rates["preprocess"] = (report["preprocess"]["gpu"] or {}).get("items_per_s")

    progress(f"face alignment crops: {args.faces} faces per frame")
    report["align"] = _measure_align(args, use_gpu, gpu)
    cpu_rates["align"] = report["align"]["cpu"]["items_per_s"]
    gpu_rates["align"] = (report["align"]["gpu"] or {}).get("items_per_s")

    if use_gpu and gpu["failures"]:
        gpu["status"] = "partial"  # some GPU measurements failed: gpu.failures says which and why
    report["capacity"] = capacity.compare(cpu_rates, gpu_rates if use_gpu else None, args.embeds_per_stream_s)
    report["seconds"] = round(time.perf_counter() - started, 1)
    _print_summary(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=_jsonable))
        progress(f"report written to {args.json}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpukit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=CARRY / "models", help="Triton-layout model directory")
    p.add_argument("--clip", type=Path, default=CARRY / "clip_1080p.mp4", help="1080p H.264 clip")
    p.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    p.add_argument("--min-seconds", type=float, default=1.0, help="time measured per model and batch size")
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--decode-seconds", type=float, default=5.0)
    p.add_argument("--nvdec-sessions", type=int, default=8, help="concurrent NVDEC decoders (H100: 7 engines)")
    p.add_argument("--faces", type=int, default=32, help="faces aligned per frame in the alignment measurement")
    p.add_argument("--embeds-per-stream-s", type=float, default=2.0,
                   help="improving faces embedded per stream per second (the capacity assumption)")
    p.add_argument("--cpu-only", action="store_true", help="skip the GPU half even where a GPU is present")
    p.add_argument("--json", type=Path, help="write the report here")
    return p


class _Progress:
    def __init__(self, started: float):
        self.started = started

    def __call__(self, message: str) -> None:
        print(f"[gpukit {time.perf_counter() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


def _gpu_environment(cpu_only: bool) -> dict:
    """What the GPU half can use: status "ran" needs PyTorch with a CUDA device; a library missing
    for one stage (CuPy, onnx2torch, PyNvVideoCodec) fails that stage only, under gpu.failures."""
    found: dict = {"status": "not run", "reason": None, "device": None, "driver": None, "libraries": {},
                   "failures": {}}
    for name in ("torch", "cupy", "PyNvVideoCodec", "tensorrt", "pynvml"):
        found["libraries"][name] = _version_of(name)
    found["libraries"]["onnx2torch"] = _version_of("onnx2torch", models.import_onnx2torch)
    if cpu_only:
        found["reason"] = "--cpu-only"
        return found
    if not found["libraries"]["torch"].startswith("absent"):
        import torch

        if torch.cuda.is_available():
            found["device"] = torch.cuda.get_device_name(0)
            found["driver"] = _driver_version()
    if found["device"] is None:
        found["reason"] = "no CUDA device (torch.cuda.is_available() is false or PyTorch is absent)"
    else:
        found["status"] = "ran"
    return found


def _version_of(name: str, importer: Callable | None = None) -> str:
    try:
        module = importer() if importer else __import__(name)
        return str(getattr(module, "__version__", "present"))
    except Exception as exc:  # noqa: BLE001 - a broken install (missing CUDA library...) reads as absent
        return f"absent ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else version
    except Exception:  # noqa: BLE001 - NVML absent or refused: the driver is only informative
        return None


def _attempt(gpu: dict, what: str, fn: Callable):
    """A GPU measurement that failed is recorded under gpu.failures and the run goes on."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - CUDA, onnx2torch, NVDEC errors alike; the report says which
        gpu["failures"][what] = f"{type(exc).__name__}: {exc}"
        print(f"[gpukit] GPU {what} failed: {gpu['failures'][what]}", file=sys.stderr, flush=True)
        return None


def _streams_worth(result: dict) -> dict:
    return {**result, "streams_1080p30": result["fps"] / capacity.FPS}


def _rate(fn: Callable[[], object], items: int, args, sync: Callable[[], None] = lambda: None) -> dict:
    fn()  # warm-up (allocations, kernel selection)
    sync()
    count, started = 0, time.perf_counter()
    while count < args.min_iters or time.perf_counter() - started < args.min_seconds:
        fn()
        count += 1
    sync()
    elapsed = time.perf_counter() - started
    return {"ms_per_batch": elapsed / count * 1000, "items_per_s": items * count / elapsed, "iterations": count}


def _best(batches: dict) -> dict:
    batch, result = max(batches.items(), key=lambda kv: kv[1]["items_per_s"])
    return {"batch": int(batch), "items_per_s": result["items_per_s"]}


def _measure_model(spec: models.ModelSpec, args, use_gpu: bool, gpu: dict, progress) -> dict:
    entry: dict = {"input": spec.input_name, "item": spec.why, "shape": list(spec.chw), "cpu": None, "gpu": None,
                   "gpu_tensorrt": None}
    model = models.load(args.models, spec)
    if model is None:
        entry["status"] = (f"absent: {spec.file(args.models)} does not exist (prepare it with `vigil models prepare` "
                           "and build the carry again); not measured")
        progress(f"{spec.name}: {entry['status']}")
        return entry
    entry["status"] = "measured"
    runner = models.cpu_runner(model, spec)
    cpu: dict = {"runtime": f"onnxruntime {_version_of('onnxruntime')} CPU fp32", "threads": os.cpu_count(),
                 "batches": {}}
    for batch in args.batches:
        progress(f"{spec.name} on the CPU, batch {batch}")
        blob = models.sample_input(spec, batch)
        cpu["batches"][str(batch)] = _rate(lambda blob=blob: runner(blob), batch, args)
    cpu["best"] = _best(cpu["batches"])
    entry["cpu"] = cpu
    if use_gpu:
        entry["gpu"] = _attempt(gpu, spec.name, lambda: _measure_model_gpu(spec, model, runner, args, progress))
        if not gpu["libraries"]["tensorrt"].startswith("absent"):
            entry["gpu_tensorrt"] = _attempt(gpu, f"{spec.name} (TensorRT)", lambda: _measure_model_gpu(
                spec, model, runner, args, progress, tensorrt=True))
    return entry


def _measure_model_gpu(spec, model, cpu_runner, args, progress, *, tensorrt: bool = False) -> dict:
    import torch

    if tensorrt:
        progress(f"{spec.name}: building a TensorRT engine (batch 1..{max(args.batches)})")
        run, to_device, precision = models.tensorrt_runner(model, spec, max(args.batches))
        runtime = f"TensorRT {_version_of('tensorrt')} {precision}"
    else:
        progress(f"{spec.name}: converting to PyTorch (onnx2torch), fp16 on CUDA")
        run, to_device = models.gpu_runner(model, spec)
        runtime = f"PyTorch {torch.__version__} fp16 via onnx2torch"
    probe = models.sample_input(spec, 2, seed=1)
    reference = cpu_runner(probe)
    outputs = [o.float().cpu().numpy() for o in run(to_device(probe))]
    result: dict = {"runtime": runtime, "batches": {},
                    "max_relative_error_vs_cpu": models.relative_error(reference, outputs)}
    for batch in args.batches:
        progress(f"{spec.name} on the GPU, batch {batch}")
        blob = to_device(models.sample_input(spec, batch))
        result["batches"][str(batch)] = _rate(lambda blob=blob: run(blob), batch, args, torch.cuda.synchronize)
    result["best"] = _best(result["batches"])
    return result


def _measure_preprocess(args, use_gpu: bool, gpu: dict) -> dict:
    frame = (np.random.default_rng(2).random((preprocess.HEIGHT, preprocess.WIDTH, 3)) * 255).astype(np.uint8)
    report: dict = {"cpu": {"what": "1080p BGR frame -> both letterboxed blobs (OpenCV)",
                            **_rate(lambda: preprocess.cpu_preprocess(frame), 1, args)}, "gpu": None}
    if use_gpu:
        def gpu_rate():
            import torch

            batch = 8
            nv12 = torch.randint(0, 256, (batch, preprocess.HEIGHT * 3 // 2, preprocess.WIDTH), dtype=torch.uint8,
                                 device="cuda")
            return {"what": f"{batch} NV12 1080p frames -> both letterboxed fp16 blobs (PyTorch)",
                    **_rate(lambda: preprocess.gpu_preprocess(nv12), batch, args, torch.cuda.synchronize)}
        report["gpu"] = _attempt(gpu, "preprocess", gpu_rate)
    return report


def _measure_align(args, use_gpu: bool, gpu: dict) -> dict:
    """Crops for the embedder by the project's warp_faces where the carry holds it (the same
    function on numpy and CuPy), else by the kit's own (cv2.warpAffine on the CPU, a CuPy gather)."""
    import cv2

    # smooth, like a camera image: on pixel noise the interpolations' rounding differences grow
    coarse = (np.random.default_rng(3).random((preprocess.HEIGHT // 8, preprocess.WIDTH // 8, 3)) * 255)
    frame = cv2.resize(coarse.astype(np.uint8), (preprocess.WIDTH, preprocess.HEIGHT), interpolation=cv2.INTER_CUBIC)
    landmarks = align.synthetic_faces(args.faces, preprocess.WIDTH, preprocess.HEIGHT)
    reference = align.warp_crops_cv2(frame, align.similarity_matrices(np, landmarks))
    project = align.project_warp()

    def crops(xp, image):
        if project is not None:
            return project(image, landmarks)  # fits on the CPU, samples where the image is
        return (align.warp_crops(xp, image, align.similarity_matrices(xp, xp.asarray(landmarks))) if xp is not np
                else align.warp_crops_cv2(image, align.similarity_matrices(np, landmarks)))

    implementation = "vigil.models.alignment.warp_faces" if project else "gpukit.align"
    cpu_diff = np.abs(crops(np, frame).astype(np.int16) - reference.astype(np.int16))
    report: dict = {"implementation": implementation, "cpu": {
        "what": f"{implementation} on numpy" + ("" if project else " (cv2.warpAffine per face)") + " + embedder blob",
        **_rate(lambda: align.embedder_blob(np, crops(np, frame)), args.faces, args),
        "max_abs_diff_vs_cv2": int(cpu_diff.max())}, "gpu": None}
    if use_gpu:
        def gpu_rate():
            import cupy

            frame_gpu = cupy.asarray(frame)
            diff = np.abs(cupy.asnumpy(crops(cupy, frame_gpu)).astype(np.int16) - reference.astype(np.int16))
            rate = _rate(lambda: align.embedder_blob(cupy, crops(cupy, frame_gpu)), args.faces, args,
                         cupy.cuda.runtime.deviceSynchronize)
            return {"what": f"{implementation} on CuPy + embedder blob", **rate,
                    "max_abs_diff_vs_cv2": int(diff.max()), "mean_abs_diff_vs_cv2": float(diff.mean())}
        report["gpu"] = _attempt(gpu, "align", gpu_rate)
    return report


def _host() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "numpy": np.__version__,
            "onnxruntime": _version_of("onnxruntime"), "onnx": _version_of("onnx")}


def _settings(args) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _print_summary(report: dict) -> None:
    lines = [f"== GPU kit report (kit {report['kit_version']}, {report['seconds']} s) =="]
    gpu = report["gpu"]
    lines.append(f"gpu: {gpu['status']}" + (f" — {gpu['reason']}" if gpu["reason"] else f" — {gpu['device']}"))
    if gpu.get("failures"):
        lines += [f"  failed on the GPU: {k}: {v}" for k, v in gpu["failures"].items()]
    lines += _decode_lines(report) + _model_lines(report) + _capacity_lines(report)
    print("\n".join(lines), flush=True)


def _decode_lines(report: dict) -> list[str]:
    lines = []
    for side in ("cpu", "gpu"):
        d = report["decode"].get(side)
        if d:
            lines.append(f"decode {side} ({d['decoder']}): {d['fps']:.1f} frames/s = {d['streams_1080p30']:.2f} "
                         "1080p30 streams")
    return lines


def _model_lines(report: dict) -> list[str]:
    lines = []
    for name, entry in report["models"].items():
        if entry["status"] != "measured":
            lines.append(f"{name}: {entry['status']}")
            continue
        for side in ("cpu", "gpu", "gpu_tensorrt"):
            m = entry.get(side)
            if m:
                per = ", ".join(f"b{b} {_num(r['items_per_s'])}/s" for b, r in m["batches"].items())
                extra = (f"; max rel. error vs CPU {m['max_relative_error_vs_cpu']:.1e}"
                         if "max_relative_error_vs_cpu" in m else "")
                lines.append(f"{name} {side}: {per}{extra}")
    for stage in ("preprocess", "align"):
        for side in ("cpu", "gpu"):
            m = report[stage].get(side)
            if m:
                lines.append(f"{stage} {side}: {m['items_per_s']:.1f}/s ({m['what']})")
    return lines


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _capacity_lines(report: dict) -> list[str]:
    cap = report["capacity"]
    lines = []
    lines.append(f"capacity at 1080p30, {cap['assumptions']['embeds_per_stream_s']:g} embeddings/stream/s:")
    for side in ("cpu", "gpu"):
        c = cap[side]
        if c:
            missing = f" (not measured: {', '.join(c['not_measured'])})" if c["not_measured"] else ""
            streams = f"{c['streams']:.2f}" if c["streams"] else "–"
            lines.append(f"  {side}: {streams} streams, bound by {c['bound_by']}{missing}")
    ratio = cap["gpu_over_cpu"]
    lines.append(f"  gpu / cpu: {ratio:.1f}x" if ratio else "  gpu / cpu: – (the GPU half did not run)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
