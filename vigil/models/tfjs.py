"""TensorFlow.js graph models to ONNX, with numpy and onnx alone (no TensorFlow).

A TF.js graph model is a JSON GraphDef (`modelTopology.node`) plus binary weights described by
`weightsManifest` (fp16-quantised floats are widened back to fp32). Every `Const` becomes an
initializer; a node whose inputs are all constants is evaluated here (TF exporters leave shape
arithmetic such as SparseToDense in the graph); every other node maps to ONNX operators. TF's
NHWC operators (Conv2D, MaxPool, ResizeBilinear) are wrapped in transposes: onnxruntime's
transpose optimiser cancels the pairs the exporter had already placed around them.

Only the operators the models Vigil prepares use are translated; any other is refused by name.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vigil.models.errors import PreparationError

OPSET = 17
IR_VERSION = 8  # the oldest that carries opset 17: older onnxruntimes and TensorRT read it
_NHWC_TO_NCHW = [0, 3, 1, 2]
_NCHW_TO_NHWC = [0, 2, 3, 1]
_DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64, "bool": np.bool_}
_TF_DTYPES = {"DT_FLOAT": TensorProto.FLOAT, "DT_INT32": TensorProto.INT32}


def read_weights(model_json: dict, directory: Path) -> dict[str, np.ndarray]:
    """The named weight arrays of a TF.js model, in float32 where they were quantised."""
    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        blob = b"".join((directory / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quantization = spec.get("quantization")
            stored = np.dtype(quantization["dtype"] if quantization else spec["dtype"])
            if stored.kind not in "fiub":
                raise PreparationError(f"weight {spec['name']}: unsupported storage type {stored}")
            raw = np.frombuffer(blob, dtype=stored, count=count, offset=offset)
            offset += count * stored.itemsize
            if quantization and "scale" in quantization:  # affine uint8/uint16 quantisation
                raw = raw.astype(np.float32) * quantization["scale"] + quantization["min"]
            weights[spec["name"]] = raw.astype(_DTYPES[spec["dtype"]]).reshape(shape)
        if offset != len(blob):
            raise PreparationError(f"weights of {group['paths']}: {len(blob) - offset} bytes left unread")
    return weights


@dataclass
class _Builder:
    """The ONNX graph being written: nodes, initializers, and the constants known so far."""

    nodes: list = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    _serial: int = 0

    def fresh(self, base: str) -> str:
        self._serial += 1
        return f"{base}__{self._serial}"

    def const(self, value: np.ndarray, base: str = "const") -> str:
        name = self.fresh(base)
        self.initializers[name] = np.asarray(value)
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def node_multi(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> list[str]:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))
        return outputs


def _attr(node: dict, name: str, kind: str, default=None):
    value = node.get("attr", {}).get(name)
    if value is None:
        return default
    if kind == "s":
        return base64.b64decode(value["s"]).decode()
    if kind == "ints":
        return [int(i) for i in value.get("list", {}).get("i", [])]
    if kind == "i":
        return int(value["i"])
    if kind == "f":
        return float(value["f"])
    if kind == "b":
        return bool(value["b"])
    raise ValueError(kind)


def _input_name(ref: str) -> str:
    """TF writes the n-th output of a node as "node:n" (n > 0); ONNX names carry it."""
    name, _, index = ref.partition(":")
    return f"{name}:{index}" if index and index != "0" else name


# --- constant evaluation: the shape arithmetic exporters leave in graphs ---------------------

def _sparse_to_dense(indices, output_shape, values, default):
    dense = np.full(np.asarray(output_shape).reshape(-1), default, dtype=np.asarray(default).dtype)
    indices = np.asarray(indices).reshape(-1, dense.ndim)
    for index, value in zip(indices, np.broadcast_to(np.asarray(values).reshape(-1), (len(indices),))):
        dense[tuple(index)] = value
    return dense


_CONSTANT_OPS: dict[str, Callable[..., np.ndarray]] = {
    "SparseToDense": _sparse_to_dense,
    "AddV2": np.add,
    "Add": np.add,
    "Identity": lambda x: x,
}


# --- operator translation ---------------------------------------------------------------------

def _nhwc(b: _Builder, op: str, x: str, node: dict, extra_inputs: list[str] | None = None, **attrs) -> str:
    """An NHWC TF operator as its NCHW ONNX twin between two transposes."""
    nchw = b.node("Transpose", [x], perm=_NHWC_TO_NCHW)
    out = b.node(op, [nchw, *(extra_inputs or [])], **attrs)
    return b.node("Transpose", [out], node["name"], perm=_NCHW_TO_NHWC)


def _check_nhwc(node: dict) -> None:
    layout = _attr(node, "data_format", "s", "NHWC")
    if layout != "NHWC":
        raise PreparationError(f"{node['name']}: data_format {layout} is not translated")


def _spatial(node: dict, name: str) -> list[int]:
    values = _attr(node, name, "ints", [1, 1, 1, 1])
    return values[1:3]  # NHWC: the H and W entries


def _conv2d(b: _Builder, node: dict, x: str, filters: str) -> str:
    _check_nhwc(node)
    if _attr(node, "padding", "s") != "VALID":
        raise PreparationError(f"{node['name']}: only VALID padding is translated (the exporter pads explicitly)")
    kernel = b.constants[filters]  # HWIO
    oihw = b.const(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), "conv_weight")
    return _nhwc(b, "Conv", x, node, [oihw], strides=_spatial(node, "strides"),
                 dilations=_spatial(node, "dilations"), kernel_shape=list(kernel.shape[:2]))


def _max_pool(b: _Builder, node: dict, x: str) -> str:
    _check_nhwc(node)
    if _attr(node, "padding", "s") != "VALID":
        raise PreparationError(f"{node['name']}: only VALID padding is translated")
    return _nhwc(b, "MaxPool", x, node, kernel_shape=_spatial(node, "ksize"), strides=_spatial(node, "strides"))


def _resize_bilinear(b: _Builder, node: dict, x: str, size: str) -> str:
    if _attr(node, "align_corners", "b", False):
        mode = "align_corners"
    elif _attr(node, "half_pixel_centers", "b", False):
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    hw = b.constants[size].astype(np.int64).reshape(2)
    # sizes are given in NCHW after the inner transpose: batch and channels keep theirs
    shape = b.node("Shape", [x])
    nc = b.node("Gather", [shape, b.const(np.array([0, 3], dtype=np.int64))], axis=0)
    sizes = b.node("Concat", [nc, b.const(hw)], axis=0)
    return _nhwc(b, "Resize", x, node, ["", "", sizes], mode="linear", coordinate_transformation_mode=mode)


def _pad(b: _Builder, node: dict, x: str, paddings: str, value: str | None = None) -> str:
    pads = b.constants[paddings].astype(np.int64)  # [[before, after] per axis]
    onnx_pads = b.const(np.concatenate([pads[:, 0], pads[:, 1]]))
    inputs = [x, onnx_pads] + ([b.const(b.constants[value].astype(np.float32).reshape(()))] if value else [])
    return b.node("Pad", inputs, node["name"], mode="constant")


def _reshape(b: _Builder, node: dict, x: str, shape: str) -> str:
    target = b.constants[shape].astype(np.int64).copy()
    target[0] = 0  # the exporter wrote batch 1: copy the input's batch instead
    return b.node("Reshape", [x, b.const(target)], node["name"])


def _split_v(b: _Builder, node: dict, x: str, sizes: str, axis: str) -> list[str]:
    count = _attr(node, "num_split", "i")
    outputs = [node["name"]] + [f"{node['name']}:{i}" for i in range(1, count)]
    return b.node_multi("Split", [x, b.const(b.constants[sizes].astype(np.int64))], outputs,
                        axis=int(b.constants[axis]))


def _same(onnx_op: str) -> Callable:
    return lambda b, node, *inputs: b.node(onnx_op, list(inputs), node["name"])


_TRANSLATIONS: dict[str, Callable] = {
    "Conv2D": _conv2d,
    "MaxPool": _max_pool,
    "ResizeBilinear": _resize_bilinear,
    "Pad": _pad,
    "PadV2": _pad,
    "Reshape": _reshape,
    "SplitV": _split_v,
    "Transpose": lambda b, node, x, perm: b.node("Transpose", [x], node["name"],
                                                 perm=[int(p) for p in b.constants[perm]]),
    "ConcatV2": lambda b, node, *inputs: b.node("Concat", list(inputs[:-1]), node["name"],
                                                axis=int(b.constants[inputs[-1]])),
    "LeakyRelu": lambda b, node, x: b.node("LeakyRelu", [x], node["name"], alpha=_attr(node, "alpha", "f", 0.2)),
    "Add": _same("Add"),
    "AddV2": _same("Add"),
    "Sigmoid": _same("Sigmoid"),
    "Relu": _same("Relu"),
    "Identity": _same("Identity"),
}


def _translate(b: _Builder, node: dict, inputs: list[str]) -> None:
    translation = _TRANSLATIONS.get(node["op"])
    if translation is None:
        raise PreparationError(f"{node['name']}: TF operator {node['op']} is not translated to ONNX "
                               "(vigil/models/tfjs.py)")
    translation(b, node, *inputs)


@dataclass(frozen=True)
class ConvertedGraph:
    model: onnx.ModelProto
    inputs: list[str]  # the TF signature's names, in the graph
    outputs: list[str]


def convert(model_json_path: Path, *, batch: str = "batch") -> ConvertedGraph:
    """The TF.js graph model at model_json_path as an ONNX model with a symbolic batch dimension.

    Inputs and outputs keep their TF names (without ":0"); the caller renames or wraps them.
    """
    model_json = json.loads(Path(model_json_path).read_text())
    weights = read_weights(model_json, Path(model_json_path).parent)
    b = _Builder()
    graph_inputs = []
    nodes = model_json["modelTopology"]["node"]
    for node in nodes:  # TF.js writes nodes in topological order
        op, name = node["op"], node["name"]
        if op == "Const":
            if name not in weights:
                raise PreparationError(f"constant {name} has no weights in the manifest")
            b.constants[name] = weights[name]
            continue
        if op == "Placeholder":
            dims = [int(d["size"]) for d in node["attr"]["shape"]["shape"]["dim"]]
            element = _TF_DTYPES[node["attr"]["dtype"]["type"]]
            graph_inputs.append(helper.make_tensor_value_info(name, element, [batch, *dims[1:]]))
            continue
        inputs = [_input_name(i) for i in node.get("input", []) if not i.startswith("^")]
        if op in _CONSTANT_OPS and all(i in b.constants for i in inputs):
            b.constants[name] = np.asarray(_CONSTANT_OPS[op](*(b.constants[i] for i in inputs)))
            continue
        for i in inputs:  # a constant read by a translated node becomes an initializer
            if i in b.constants and i not in b.initializers:
                b.initializers[i] = b.constants[i]
        _translate(b, node, inputs)

    signature = model_json["signature"]["outputs"]
    signature_outputs = [o.split(":")[0] for o in signature]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                      [batch, *(int(d["size"]) for d in spec["tensorShape"]["dim"][1:])])
        for name, spec in zip(signature_outputs, signature.values())
    ]
    used = {i for n in b.nodes for i in n.input}
    initializers = [numpy_helper.from_array(v, k) for k, v in b.initializers.items() if k in used]
    graph = helper.make_graph(b.nodes, "tfjs", graph_inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vigil.models.tfjs")
    model.ir_version = IR_VERSION
    return ConvertedGraph(model, [i.name for i in graph_inputs], signature_outputs)
