"""The embedded Triton serves the prepared repository with config.pbtxt's model metadata."""

from __future__ import annotations

import shutil

import tritonclient.grpc as triton_grpc

from vigil.models.repository import list_models
from vigil.models.serving import servable_models


def test_models_are_served_with_the_config_of_the_repository(endpoints, served_models, model_repository, analyzer):
    client = triton_grpc.InferenceServerClient(endpoints.triton_url)
    try:
        for model in list_models(model_repository):
            if model.name not in served_models:
                assert not client.is_model_ready(model.name, headers=endpoints.triton_headers)
                continue
            assert client.is_model_ready(model.name, headers=endpoints.triton_headers)
            served = client.get_model_config(model.name, headers=endpoints.triton_headers).config
            assert served.max_batch_size == model.config.max_batch_size
            assert list(served.dynamic_batching.preferred_batch_size) == list(
                model.config.dynamic_batching.preferred_batch_size)
            assert (served.dynamic_batching.max_queue_delay_microseconds
                    == model.config.dynamic_batching.max_queue_delay_microseconds)
            for served_tensors, declared in ((served.input, model.config.input), (served.output, model.config.output)):
                assert [(t.name, t.data_type, list(t.dims)) for t in served_tensors] == [
                    (t.name, t.data_type, list(t.dims)) for t in declared]
    finally:
        client.close()


def test_only_models_with_a_file_are_servable(model_repository, served_models, tmp_path):
    assert [m.name for m in servable_models(model_repository)] == ["face_detector", "face_embedder", "object_detector"]
    empty = tmp_path / "repo"
    shutil.copytree(model_repository, empty, ignore=shutil.ignore_patterns("1"))
    assert servable_models(empty) == []
    assert servable_models(tmp_path / "does-not-exist") == []
