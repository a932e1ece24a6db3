"""The Triton model repository on disk: one directory per model with its config.pbtxt and the
model file under version 1/. config.pbtxt is the single description of each model's tensors;
the preparation step checks model files against it and the embedded server binds from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format
from onnx import helper
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

from vigil.models.errors import PreparationError

MODEL_VERSION = "1"
CONFIG_FILE = "config.pbtxt"
DEFAULT_MODEL_FILE = "model.onnx"

ModelConfig = model_config_pb2.ModelConfig


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str  # Triton's name without the TYPE_ prefix: FP32, INT64, ...
    dims: tuple[int, ...]  # without the batch dimension when the model batches; -1 = any size

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(triton_to_np_dtype(self.data_type))


@dataclass(frozen=True)
class RepositoryModel:
    name: str
    directory: Path
    config: ModelConfig

    @property
    def model_file(self) -> Path:
        return self.directory / MODEL_VERSION / (self.config.default_model_filename or DEFAULT_MODEL_FILE)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return tuple(_spec(t) for t in self.config.input)

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(_spec(t) for t in self.config.output)


def _spec(tensor) -> TensorSpec:
    return TensorSpec(
        name=tensor.name,
        data_type=model_config_pb2.DataType.Name(tensor.data_type).removeprefix("TYPE_"),
        dims=tuple(int(d) for d in tensor.dims),
    )


def read_model(directory: Path) -> RepositoryModel:
    path = directory / CONFIG_FILE
    try:
        config = text_format.Parse(path.read_text(), ModelConfig())
    except (OSError, text_format.ParseError) as exc:
        raise PreparationError(f"{path}: {exc}") from exc
    if config.name and config.name != directory.name:
        raise PreparationError(f"{path}: name {config.name!r} differs from its directory {directory.name!r}")
    config.name = directory.name
    return RepositoryModel(name=directory.name, directory=directory, config=config)


def list_models(repo_dir: Path) -> list[RepositoryModel]:
    """Every model directory of the repository (those with a config.pbtxt), by name."""
    if not repo_dir.is_dir():
        raise PreparationError(f"model repository {repo_dir} does not exist (setting triton.model_repository)")
    return [read_model(d) for d in sorted(repo_dir.iterdir()) if (d / CONFIG_FILE).is_file()]


def onnx_tensor_specs(values) -> tuple[TensorSpec, ...]:
    """Tensor specs of ONNX graph inputs/outputs, symbolic dimensions as -1, batch included."""
    specs = []
    for value in values:
        tensor_type = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        numpy_type = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        specs.append(TensorSpec(value.name, np_to_triton_dtype(numpy_type), dims))
    return tuple(specs)


def check_against_config(model: RepositoryModel, graph_inputs, graph_outputs) -> None:
    """Raise PreparationError unless the ONNX graph's tensors are what config.pbtxt declares.

    Names and data types must be equal. A dimension the config fixes must be fixed to the same
    size or free (-1) in the graph; with max_batch_size > 0 the graph's first dimension must be
    free, since Triton puts the batch there.
    """
    batching = model.config.max_batch_size > 0
    for kind, declared, actual in (
        ("input", model.inputs, onnx_tensor_specs(graph_inputs)),
        ("output", model.outputs, onnx_tensor_specs(graph_outputs)),
    ):
        found = {spec.name: spec for spec in actual}
        if set(found) != {spec.name for spec in declared}:
            raise PreparationError(
                f"{model.name}: config.pbtxt declares {kind}s {sorted(s.name for s in declared)}, "
                f"{model.model_file.name} has {sorted(found)}"
            )
        for spec in declared:
            graph = found[spec.name]
            dims = graph.dims
            if batching:
                if not dims or dims[0] != -1:
                    raise PreparationError(
                        f"{model.name}: {kind} {spec.name} has a fixed first dimension {dims[:1]} but "
                        f"max_batch_size is {model.config.max_batch_size}; export it with a dynamic batch"
                    )
                dims = dims[1:]
            compatible = len(dims) == len(spec.dims) and all(g in (-1, c) for g, c in zip(dims, spec.dims))
            if graph.data_type != spec.data_type or not compatible:
                raise PreparationError(
                    f"{model.name}: {kind} {spec.name} is {graph.data_type}{list(dims)} in the model file, "
                    f"{spec.data_type}{list(spec.dims)} in config.pbtxt"
                )
