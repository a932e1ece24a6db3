"""Models travel with their large fp32 weights stored as fp16 (halves SFace's 39 MB so the carry
stays under 64 MiB) and are widened back to fp32 on load: the graph is the prepared one, only its
weights are rounded to fp16 (the GPU runs fp16 anyway; the CPU baseline runs the widened fp32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

PACKED_KEY = "gpukit.fp16_initializers"  # metadata: comma-separated names of the narrowed weights
MIN_ELEMENTS = 1024  # small tensors (shapes, biases of a few channels) stay as they are


def pack(model: onnx.ModelProto) -> onnx.ModelProto:
    packed = onnx.ModelProto()
    packed.CopyFrom(model)
    names = []
    for init in packed.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= MIN_ELEMENTS:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))
            names.append(init.name)
    packed.metadata_props.add(key=PACKED_KEY, value=",".join(names))
    return packed


def unpack(model: onnx.ModelProto) -> onnx.ModelProto:
    """The runnable fp32 graph (a model that was never packed comes back unchanged)."""
    props = {p.key: p.value for p in model.metadata_props}
    names = set(filter(None, props.get(PACKED_KEY, "").split(",")))
    for init in model.graph.initializer:
        if init.name in names:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    kept = [p for p in model.metadata_props if p.key != PACKED_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    return model


def load(path: Path) -> onnx.ModelProto:
    return unpack(onnx.load(str(path)))
