"""Builds the GPU kit's carry: everything an offline GPU machine needs to run the kit, in one
git-ignored directory of at most 64 MiB, and prints the one command to run there.

    .venv/bin/python bench/gpu/build_carry.py [--out .gpu-carry] [--clip-seconds 6]

The carry holds:
  gpukit/          the kit's runtime (bench/gpu/gpukit, copied: it never imports vigil)
  wheels/          pip download --no-deps of what the GPU machines lack (PyNvVideoCodec,
                   onnx2torch, nvidia-ml-py), for CPython 3.12 manylinux x86_64
  models/          the prepared face_detector, face_embedder and (once `vigil models prepare` makes
                   it) object_detector, weights stored as fp16 (gpukit/packing.py) to fit
  clip_1080p.mp4   people_street (real pedestrian footage) scaled to 1920x1080, H.264 at 30 fps
  run.sh           installs the wheels into a scratch directory (pip --no-index --no-deps) and runs
                   `python3 -m gpukit` from the carry with PYTHONPATH: no venv, no Vigil
  carry.json       what is in it, sizes and sources
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import onnx

REPO = Path(__file__).resolve().parents[2]
KIT = Path(__file__).resolve().parent / "gpukit"
sys.path.insert(0, str(KIT.parent))

from gpukit import models as kit_models  # noqa: E402
from gpukit import packing  # noqa: E402

from vigil.models.prepare import sha256_file  # noqa: E402

LIMIT_BYTES = 64 * 1024 * 1024  # what a GPU machine accepts alongside the command
DEFAULT_OUT = REPO / ".gpu-carry"
WHEELS = ("pynvvideocodec==2.2.4", "onnx2torch==1.5.15", "nvidia-ml-py==13.615.71")
# The lent GPU machines run CPython 3.12 on x86-64 (PyTorch, CuPy, onnx, onnxruntime, OpenCV there).
WHEEL_TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
                *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                  for a in ("--platform", p)]]
CLIP_NAME, CLIP_SIZE, CLIP_FPS = "clip_1080p.mp4", (1920, 1080), 30
CLIP_SECONDS = 6.0  # ~4 MB; NVDEC loops it. Leaves room for the object detector and the working tree beside it
RUN_SH = """#!/usr/bin/env bash
# Runs the GPU kit from this directory on a machine with no network: the carried wheels go into a
# scratch directory, the kit runs with PYTHONPATH (no venv, no Vigil). Arguments go to the kit
# (e.g. --json report.json, --cpu-only, --batches 1 8 64).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SITE=${GPUKIT_SITE:-/tmp/gpukit-site}
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$SITE" "$HERE"/wheels/*.whl
export PYTHONPATH="$HERE:$SITE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m gpukit "$@"
"""


def build_carry(out: Path, *, model_repository: Path, wheel_cache: Path, clip_seconds: float,
                media_cache: Path | None = None, log=print) -> dict:
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    manifest: dict = {"limit_bytes": LIMIT_BYTES, "files": {}, "models": {}, "notes": []}

    log("[carry] wheels (pip download --no-deps, CPython 3.12 manylinux x86_64)")
    for wheel in _download_wheels(wheel_cache):
        shutil.copy2(wheel, out / "wheels" / wheel.name)
    manifest["notes"].append("nvidia-deepstream-videodecode-cu13 is not carried: it needs nvidia-npp (154 MB)")

    log(f"[carry] models from {model_repository}")
    for spec in kit_models.SPECS:
        source = spec.file(model_repository)
        if not source.is_file():
            manifest["models"][spec.name] = f"absent: {source} (the kit skips it)"
            log(f"[carry]   {spec.name}: absent ({source}), the kit will skip it")
            continue
        target = spec.file(out / "models")
        target.parent.mkdir(parents=True)
        onnx.save(packing.pack(onnx.load(str(source))), str(target))
        manifest["models"][spec.name] = {"source": str(source), "source_sha256": sha256_file(source),
                                         "weights": "fp16 in the file, fp32 when loaded"}
        log(f"[carry]   {spec.name}: {source.stat().st_size / 1e6:.1f} MB -> {target.stat().st_size / 1e6:.1f} MB")

    log(f"[carry] {CLIP_NAME}: {clip_seconds:g} s of people_street at 1920x1080, {CLIP_FPS} fps")
    manifest["clip"] = _make_clip(out / CLIP_NAME, clip_seconds, media_cache)

    shutil.copytree(KIT, out / "gpukit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    manifest["alignment"] = _carry_alignment(out / "gpukit" / "vigil_alignment.py")
    log(f"[carry] alignment: {manifest['alignment']}")
    (out / "run.sh").write_text(RUN_SH)
    (out / "run.sh").chmod(0o755)

    manifest["files"] = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    manifest["total_bytes"] = sum(manifest["files"].values())
    (out / "carry.json").write_text(json.dumps(manifest, indent=1))
    manifest["total_bytes"] += (out / "carry.json").stat().st_size
    return manifest


def _download_wheels(cache: Path) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    wheels = []
    for requirement in WHEELS:
        name, version = requirement.split("==")
        stem = f"{name.replace('-', '_')}-{version}-"
        found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(stem)]
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--disable-pip-version-check", *WHEEL_TARGET, "-d", str(cache), requirement],
                           check=True, timeout=600)
            found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(stem)]
        if len(found) != 1:
            raise SystemExit(f"expected one wheel for {requirement} in {cache}, found {[p.name for p in found]}")
        wheels.append(found[0])
    return wheels


def _make_clip(path: Path, seconds: float, media_cache: Path | None) -> dict:
    import av

    from vigil.samples import load_sample_videos
    from vigil.samples.videos import encode_h264

    source = load_sample_videos(media_cache)["people_street"]
    total = max(1, round(seconds * CLIP_FPS))

    def frames():  # each source frame once (10 fps footage played at 30 fps: real motion, not repeats)
        count = 0
        while count < total:
            with av.open(str(source.path)) as container:
                for frame in container.decode(video=0):
                    yield cv2.resize(frame.to_ndarray(format="bgr24"), CLIP_SIZE, interpolation=cv2.INTER_CUBIC)
                    count += 1
                    if count == total:
                        return

    count = encode_h264(frames(), path, *CLIP_SIZE, CLIP_FPS, total, "clip")
    return {"source": f"{source.name}: {source.source}", "width": CLIP_SIZE[0], "height": CLIP_SIZE[1],
            "fps": CLIP_FPS, "frames": count, "codec": "h264", "bytes": path.stat().st_size}


def _carry_alignment(target: Path) -> str:
    """Vigil's own alignment module, when it is array-module generic (`warp_faces` on numpy and
    CuPy): the kit then times the project's code on the GPU. The GPU machine has no Vigil, so its
    `from vigil... import NAME` lines become the constants' values, and the copy is checked to crop
    exactly as the original before it is carried."""
    import importlib.util

    import numpy as np

    from vigil.models import alignment

    if not hasattr(alignment, "warp_faces"):
        return "not carried: vigil.models.alignment has no warp_faces (cv2 only); the kit uses gpukit/align.py"
    lines = []
    for line in Path(alignment.__file__).read_text().splitlines():
        match = re.fullmatch(r"from (vigil(?:\.\w+)+) import (.+)", line)
        if match:
            module = importlib.import_module(match.group(1))
            for name in (n.strip() for n in match.group(2).split(",")):
                value = getattr(module, name)
                if not isinstance(value, int | float | str | tuple):
                    return f"not carried: {match.group(1)}.{name} is no constant; the kit uses gpukit/align.py"
                lines.append(f"{name} = {value!r}  # from {match.group(1)} (carried copy of vigil.models.alignment)")
        else:
            lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    spec = importlib.util.spec_from_file_location("carried_alignment", target)
    carried = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(carried)
    image = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    faces = [alignment.ARCFACE_TEMPLATE * 1.2 + 40, alignment.ARCFACE_TEMPLATE * 0.8 + 120]
    if not np.array_equal(carried.warp_faces(image, faces), alignment.warp_faces(image, faces)):
        target.unlink()
        return "not carried: the copy crops differently from vigil.models.alignment; the kit uses gpukit/align.py"
    return "vigil.models.alignment.warp_faces (carried as gpukit/vigil_alignment.py)"




def _prepared_repository(path: Path | None) -> Path:
    """The given repository, or the configured one with its models prepared (no database)."""
    from vigil.models.prepare import prepare_repository
    from vigil.settings import load_settings

    repo = (path or Path(load_settings().triton.model_repository)).resolve()
    if not all(spec.file(repo).is_file() for spec in kit_models.SPECS):
        print(f"[carry] preparing the models in {repo} (vigil models prepare --no-register)")
        prepare_repository(repo)
    return repo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--model-repository", type=Path, help="prepared Triton repository (default: the setting)")
    parser.add_argument("--wheel-cache", type=Path, default=Path(tempfile.gettempdir()) / "vigil-gpukit-wheels")
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS)
    parser.add_argument("--media-cache", type=Path, help="sample video cache (default: <state_dir>/media)")
    args = parser.parse_args(argv)
    manifest = build_carry(args.out, model_repository=_prepared_repository(args.model_repository),
                           wheel_cache=args.wheel_cache, clip_seconds=args.clip_seconds, media_cache=args.media_cache)
    total = manifest["total_bytes"]
    print(f"[carry] {args.out}: {total / 2**20:.1f} MiB of {LIMIT_BYTES / 2**20:.0f} MiB")
    for name, size in manifest["files"].items():
        print(f"  {size / 2**20:7.2f} MiB  {name}")
    if total > LIMIT_BYTES:
        print(f"[carry] too large: {total} bytes > {LIMIT_BYTES}; shorten the clip (--clip-seconds)", file=sys.stderr)
        return 1
    relative = args.out.resolve().relative_to(REPO) if args.out.resolve().is_relative_to(REPO) else args.out.resolve()
    print("\nOn the GPU machine, from the directory that holds the carry (it needs python3 with PyTorch,")
    print("CuPy, onnx, onnxruntime, OpenCV and numpy; nothing is fetched):\n")
    print(f"    bash {relative}/run.sh --json gpu-kit.json\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
