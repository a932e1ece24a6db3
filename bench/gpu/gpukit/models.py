"""The three networks a node runs per stream, as the Triton repository holds them, and the ways
to run each: onnxruntime on the CPU; PyTorch on CUDA in fp16 through onnx2torch (the lent GPU
machines have PyTorch but neither TensorRT nor onnxruntime-gpu); and TensorRT where `tensorrt`
imports."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from gpukit import packing


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the Triton model directory
    input_name: str
    chw: tuple[int, int, int]  # one item's input
    why: str  # what one item is, in the node's work

    def file(self, models_dir: Path) -> Path:
        return models_dir / self.name / "1" / "model.onnx"


# 1080p frames letterboxed onto the DeepStream configs' canvases (configs/pgie_*.txt, the contract).
FACE_DETECTOR = ModelSpec("face_detector", "input", (3, 384, 640), "one frame (YuNet, 640x384 canvas)")
OBJECT_DETECTOR = ModelSpec("object_detector", "input", (3, 416, 416), "one frame (NanoDet-g, 416x416 letterbox)")
FACE_EMBEDDER = ModelSpec("face_embedder", "data", (3, 112, 112), "one aligned face (SFace)")
SPECS = (FACE_DETECTOR, OBJECT_DETECTOR, FACE_EMBEDDER)


def sample_input(spec: ModelSpec, batch: int, seed: int = 0) -> np.ndarray:
    """Pixel-like input (0..255, smooth enough that activations look like a real frame's)."""
    rng = np.random.default_rng(seed)
    c, h, w = spec.chw
    coarse = rng.uniform(0, 255, (batch, c, max(h // 16, 1), max(w // 16, 1))).astype(np.float32)
    return np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)[:, :, :h, :w].copy()


def cpu_runner(model: onnx.ModelProto, spec: ModelSpec) -> Callable[[np.ndarray], list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {spec.input_name: batch})


def import_onnx2torch():
    """onnx2torch 1.5 imports torch.onnx.symbolic_helper (TorchScript exporter) only to read the
    export opset; PyTorch releases that dropped the module get a stand-in, which conversion never reads."""
    import torch

    try:
        import torch.onnx.symbolic_helper
    except ImportError:
        shim = types.ModuleType("torch.onnx.symbolic_helper")
        shim.GLOBALS = types.SimpleNamespace(export_onnx_opset_version=17)
        sys.modules[shim.__name__] = shim
        torch.onnx.symbolic_helper = shim
    import onnx2torch

    return onnx2torch


def gpu_runner(model: onnx.ModelProto, spec: ModelSpec):
    """(run, to_device): run takes a CUDA fp16 tensor and returns the outputs (CUDA tensors)."""
    import torch

    module = import_onnx2torch().convert(supported_opset(model)).eval().cuda().half()

    def run(batch):
        with torch.inference_mode():
            out = module(batch)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def to_device(array: np.ndarray):
        return torch.from_numpy(array).cuda().half()

    return run, to_device


def tensorrt_runner(model: onnx.ModelProto, spec: ModelSpec, max_batch: int):
    """(run, to_device, precision) for a TensorRT engine built here from the ONNX graph (batch 1 to
    max_batch, fp16 where the builder offers the flag). Only where `tensorrt` imports: the lent GPU
    machines lack it, so this path has not run yet."""
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        raise RuntimeError("; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
    config = builder.create_builder_config()
    precision = "fp32"
    if hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
        precision = "fp16"
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.input_name, (1, *spec.chw), (max_batch, *spec.chw), (max_batch, *spec.chw))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT built no engine (see its log above)")
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    outputs = [o.name for o in model.graph.output]

    def run(batch):
        context.set_input_shape(spec.input_name, tuple(batch.shape))
        context.set_tensor_address(spec.input_name, batch.data_ptr())
        results = []
        for name in outputs:
            dtype = torch.from_numpy(np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
            result = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, result.data_ptr())
            results.append(result)
        context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        return results

    def to_device(array: np.ndarray):
        return torch.from_numpy(array).cuda()  # the engine's input stays fp32, as in the ONNX graph

    return run, to_device, precision


def supported_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at the newest opset whose version of every operator onnx2torch converts (the
    prepared models are opset 21; onnx2torch 1.5 knows e.g. Reshape up to 14)."""
    from onnx import defs, version_converter
    from onnx2torch.node_converters import registry

    known = {(d.operation_type, d.version) for d in registry._CONVERTER_REGISTRY}
    ops = {n.op_type for n in model.graph.node}
    current = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for opset in range(current, 6, -1):
        if all((op, defs.get_schema(op, max_inclusive_version=opset).since_version) in known for op in ops):
            return model if opset == current else version_converter.convert_version(model, opset)
    raise RuntimeError(f"onnx2torch converts no opset of {sorted(ops)}")


def load(models_dir: Path, spec: ModelSpec) -> onnx.ModelProto | None:
    path = spec.file(models_dir)
    return packing.load(path) if path.is_file() else None


def relative_error(reference: list[np.ndarray], other: list[np.ndarray]) -> float:
    """Largest |a - b| over all outputs, relative to the largest |a| of that output."""
    worst = 0.0
    for a, b in zip(reference, other, strict=True):
        scale = float(np.abs(a).max()) or 1.0
        worst = max(worst, float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()) / scale)
    return worst
