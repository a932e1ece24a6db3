"""Serving the model repository from the embedded Triton (PyTriton) through onnxruntime.

Each model directory with a model file is bound under its directory name with the tensors,
max_batch_size and dynamic batching of its config.pbtxt, so a client sees the same model
metadata and answers as from a production Triton running the same repository.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vigil.logs import get_logger
from vigil.models.errors import PreparationError
from vigil.models.repository import RepositoryModel, list_models
from vigil.models.runtime import available_cores, cpu_session

log = get_logger("vigil.models.serving")


def servable_models(repo_dir: Path) -> list[RepositoryModel]:
    """Models whose file is in place; the others (not prepared, not supplied) are logged and left out."""
    try:
        models = list_models(repo_dir)
    except PreparationError as exc:  # a missing repository or a broken config.pbtxt: serve nothing
        log.error("model repository unreadable, no models served", error=str(exc))
        return []
    servable = []
    for model in models:
        if not model.model_file.is_file():
            log.info("no model file, not served", model=model.name, expected=str(model.model_file))
        elif model.config.max_batch_size < 1:
            log.error("not served: the embedded Triton binds batching models only (max_batch_size >= 1)",
                      model=model.name)
        else:
            servable.append(model)
    return servable


def infer_function(model: RepositoryModel, threads: int) -> Callable:
    """A PyTriton @batch callable running the model's onnxruntime session on a whole batch."""
    from pytriton.decorators import batch

    session = cpu_session(model.model_file, threads)
    output_names = [spec.name for spec in model.outputs]
    input_types = {spec.name: spec.numpy_dtype for spec in model.inputs}

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {name: np.ascontiguousarray(array, dtype=input_types[name]) for name, array in inputs.items()}
        return dict(zip(output_names, session.run(output_names, feeds)))

    return infer


def bind_repository(triton, repo_dir: Path) -> list[str]:
    """Bind every servable model of the repository into a pytriton.triton.Triton; returns
    their names. A model that fails to load is logged and skipped: the server still answers
    for the others."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    models = servable_models(repo_dir)
    # Every session may use every core: requests rarely hit both models at the same instant, and
    # with non-spinning workers (runtime.cpu_session) an overlap costs little. Measured on 2 cores
    # through Triton: SFace 13 ms per face with 2 threads, 25 ms with 1.
    threads = available_cores()
    served = []
    for model in models:
        batching = model.config.dynamic_batching
        try:
            triton.bind(
                model_name=model.name,
                infer_func=infer_function(model, threads),
                inputs=[Tensor(name=s.name, dtype=s.numpy_dtype, shape=s.dims) for s in model.inputs],
                outputs=[Tensor(name=s.name, dtype=s.numpy_dtype, shape=s.dims) for s in model.outputs],
                config=ModelConfig(
                    max_batch_size=model.config.max_batch_size,
                    batcher=DynamicBatcher(
                        preferred_batch_size=list(batching.preferred_batch_size) or None,
                        max_queue_delay_microseconds=batching.max_queue_delay_microseconds,
                    ),
                ),
                strict=True,  # outputs must have the declared dtypes and shapes
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime's load errors, PyTriton's config errors
            log.error("model not served", model=model.name, error=str(exc)[:300])
            continue
        log.info("model bound", model=model.name, file=str(model.model_file), threads=threads)
        served.append(model.name)
    return served

