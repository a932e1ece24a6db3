"""The GPU kit (bench/gpu/): its CPU half on the real prepared models, run as the GPU machines run
it (the kit's own package on PYTHONPATH, Vigil never imported), the report's fields and its plain
"gpu: not run"; the carry built for real and under the 64 MiB a GPU machine accepts; the kit's
alignment maths against OpenCV and its fp16 weight packing against the original model. The GPU
half itself needs a GPU: it is run by hand (BENCHMARKS.md, "GPU kit")."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.pipeline.support import MEDIA_CACHE
from vigil.models import alignment

REPO = Path(__file__).resolve().parents[2]
KIT_DIR = REPO / "bench" / "gpu"
sys.path.insert(0, str(KIT_DIR))

from gpukit import align, capacity, packing  # noqa: E402

# Runs the kit's entry point, then fails if anything of Vigil was imported on the way.
RUN_KIT = ("import sys, runpy; sys.argv = ['gpukit'] + sys.argv[1:]\n"
           "try:\n    runpy.run_module('gpukit', run_name='__main__')\n"
           "except SystemExit as exit:\n    code = exit.code\n"
           "leaked = sorted(m for m in sys.modules if m == 'vigil' or m.startswith('vigil.'))\n"
           "sys.exit(f'the kit imported {leaked}' if leaked else code)\n")
TINY = ["--batches", "1", "2", "--min-seconds", "0", "--min-iters", "1", "--decode-seconds", "0.5", "--faces", "4",
        "--cpu-only"]


def run_kit(kit_path: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(kit_path)}
    done = subprocess.run([sys.executable, "-c", RUN_KIT, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def build_carry():
    spec = importlib.util.spec_from_file_location("build_carry", KIT_DIR / "build_carry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip(tmp_path_factory, build_carry) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    build_carry._make_clip(path, 0.5, MEDIA_CACHE)
    return path


def test_cpu_half_measures_every_model_and_says_the_gpu_did_not_run(prepared_models, model_repository, clip,
                                                                    tmp_path):
    report_path = tmp_path / "report.json"
    done = run_kit(KIT_DIR, ["--models", str(model_repository), "--clip", str(clip), "--json", str(report_path),
                             *TINY], cwd=tmp_path)
    assert "gpu: not run — --cpu-only" in done.stdout
    assert "object_detector" in done.stdout and "[gpukit" in done.stderr  # the report, and progress while it ran
    report = json.loads(report_path.read_text())

    assert report["gpu"]["status"] == "not run" and report["gpu"]["reason"] == "--cpu-only"
    assert report["gpu"]["failures"] == {} and set(report["gpu"]["libraries"]) >= {"torch", "cupy", "PyNvVideoCodec"}
    assert report["decode"]["cpu"]["frames"] > 0 and report["decode"]["gpu"] is None
    assert report["decode"]["cpu"]["streams_1080p30"] == pytest.approx(report["decode"]["cpu"]["fps"] / 30)
    for name in ("face_detector", "face_embedder"):
        entry = report["models"][name]
        assert entry["status"] == "measured" and entry["gpu"] is None and entry["gpu_tensorrt"] is None
        assert set(entry["cpu"]["batches"]) == {"1", "2"}
        assert all(r["items_per_s"] > 0 and r["ms_per_batch"] > 0 for r in entry["cpu"]["batches"].values())
        assert entry["cpu"]["best"]["batch"] in (1, 2)
    detector = report["models"]["object_detector"]
    if (model_repository / "object_detector" / "1" / "model.onnx").is_file():
        assert detector["status"] == "measured"
    else:
        assert detector["status"].startswith("absent:") and detector["cpu"] is None
    for stage in ("preprocess", "align"):
        assert report[stage]["cpu"]["items_per_s"] > 0 and report[stage]["gpu"] is None
    assert report["align"]["implementation"] == "gpukit.align" and report["align"]["cpu"]["max_abs_diff_vs_cv2"] <= 2

    cpu = report["capacity"]["cpu"]
    assert cpu["streams"] > 0 and cpu["bound_by"] == "compute"
    assert set(cpu["ms_per_stream_second"]) >= {"decode", "preprocess", "face_detector", "face_embedder", "align"}
    assert report["capacity"]["gpu"] is None and report["capacity"]["gpu_over_cpu"] is None
    assert report["capacity"]["assumptions"]["embeds_per_stream_s"] == 2.0


def test_carry_is_built_under_the_limit_and_runs_from_its_own_directory(build_carry, prepared_models,
                                                                        model_repository, tmp_path):
    out = tmp_path / "carry"
    manifest = build_carry.build_carry(out, model_repository=model_repository,
                                       wheel_cache=REPO / ".vigil" / "gpu-wheels",
                                       clip_seconds=build_carry.CLIP_SECONDS, media_cache=MEDIA_CACHE, log=print)
    on_disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert manifest["total_bytes"] == on_disk <= build_carry.LIMIT_BYTES
    wheels = sorted(p.name.split("-")[0].lower() for p in (out / "wheels").glob("*.whl"))
    assert wheels == ["nvidia_ml_py", "onnx2torch", "pynvvideocodec"]
    assert (out / "models" / "face_embedder" / "1" / "model.onnx").stat().st_size < 0.6 * (
        model_repository / "face_embedder" / "1" / "model.onnx").stat().st_size  # fp16 weights
    assert manifest["clip"]["width"] == 1920 and manifest["clip"]["codec"] == "h264"
    subprocess.run(["bash", "-n", str(out / "run.sh")], check=True)

    # The carried kit alone, from the carry's directory, on the carried models and clip.
    report_path = tmp_path / "carried.json"
    run_kit(out, [*TINY, "--batches", "1", "--json", str(report_path)], cwd=out)
    report = json.loads(report_path.read_text())
    assert report["models"]["face_embedder"]["status"] == "measured"
    assert report["settings"]["clip"].startswith(str(out))
    # Vigil's alignment travels when it is array-module generic, and the kit then times it
    carried = (out / "gpukit" / "vigil_alignment.py").is_file()
    assert carried == hasattr(alignment, "warp_faces"), manifest["alignment"]
    assert report["align"]["implementation"] == ("vigil.models.alignment.warp_faces" if carried else "gpukit.align")


def test_alignment_maths_matches_opencv():
    image = cv2.GaussianBlur((np.random.default_rng(5).random((1080, 1920, 3)) * 255).astype(np.uint8), (9, 9), 3)
    landmarks = align.synthetic_faces(16, 1920, 1080, seed=7)
    matrices = align.similarity_matrices(np, landmarks)
    opencv = np.stack([cv2.estimateAffinePartial2D(p, align.TEMPLATE, method=cv2.RANSAC,
                                                   ransacReprojThreshold=1e6)[0] for p in landmarks])
    assert np.abs(matrices - opencv).max() < 1e-3
    crops = align.warp_crops(np, image, matrices)
    reference = align.warp_crops_cv2(image, matrices)
    diff = np.abs(crops.astype(np.int16) - reference.astype(np.int16))
    assert crops.shape == (16, 112, 112, 3) and diff.max() <= 2 and diff.mean() < 0.2  # OpenCV's fixed point
    blob = align.embedder_blob(np, crops)
    assert blob.shape == (16, 3, 112, 112) and np.array_equal(blob[:, 0], crops[..., 2])  # RGB planes


def test_fp16_packing_halves_the_weights_and_keeps_the_outputs(prepared_models):
    original = onnx.load(str(prepared_models["face_embedder"].path))
    packed = packing.pack(original)
    assert len(packed.SerializeToString()) < 0.55 * len(original.SerializeToString())
    restored = packing.unpack(onnx.load_from_string(packed.SerializeToString()))
    assert not restored.metadata_props or all(p.key != packing.PACKED_KEY for p in restored.metadata_props)
    batch = (np.random.default_rng(0).random((2, 3, 112, 112)) * 255).astype(np.float32)
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                for m in (original, restored)]
    a, b = (session.run(None, {"data": batch})[0] for session in sessions)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.999  # fp16 weights: the embedding barely moves


def test_capacity_bounds_gpu_streams_by_nvdec_apart_from_compute():
    rates = {"decode": 600.0, "preprocess": 3000.0, "face_detector": 3000.0, "object_detector": 3000.0,
             "align": 10000.0, "face_embedder": 10000.0}
    gpu = capacity.streams(rates, 2.0, decode_separate=True)
    assert gpu["bounds"]["decode"] == pytest.approx(20.0) and gpu["bound_by"] == "decode"
    assert gpu["bounds"]["compute"] == pytest.approx(1 / (3 * 30 / 3000 + 2 * 2 / 10000))
    cpu = capacity.streams(rates, 2.0, decode_separate=False)
    assert cpu["streams"] == pytest.approx(1 / (30 / 600 + 3 * 30 / 3000 + 2 * 2 / 10000))
    partial = capacity.streams({**rates, "object_detector": None}, 2.0, decode_separate=False)
    assert partial["not_measured"] == ["object_detector"] and partial["streams"] > cpu["streams"]
    report = capacity.compare(rates, rates, 2.0)
    assert report["gpu_over_cpu"] == pytest.approx(gpu["streams"] / cpu["streams"])
