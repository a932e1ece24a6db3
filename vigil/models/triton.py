"""The Triton gRPC plumbing every model client shares: one connection, the models' configs
(read once), readiness, batching by the model's max_batch_size, and errors as InferenceError."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from vigil.endpoints import Endpoints
from vigil.models.errors import InferenceError


def chunks(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


class TritonModels:
    def __init__(self, endpoints: Endpoints, *, timeout_s: float = 30.0):
        self.url = endpoints.triton_url
        self.timeout_s = timeout_s
        self._client = triton_grpc.InferenceServerClient(endpoints.triton_url)
        self._headers = dict(endpoints.triton_headers)
        self._configs: dict[str, object] = {}

    def close(self) -> None:
        self._client.close()

    def is_ready(self, model: str) -> bool:
        try:
            return self._client.is_model_ready(model, headers=self._headers)
        except InferenceServerException:
            return False  # server still starting, or unreachable

    def wait_until_ready(self, models: Sequence[str], timeout_s: float = 60.0) -> None:
        """Block until the models are loaded (the server answers before it has loaded them)."""
        deadline = time.monotonic() + timeout_s
        pending = list(models)
        while pending:
            pending = [m for m in pending if not self.is_ready(m)]
            if pending and time.monotonic() > deadline:
                raise InferenceError(f"Triton has not loaded {', '.join(pending)} after {timeout_s:.0f}s: "
                                     "run `vigil models prepare` and restart the triton service")
            if pending:
                time.sleep(0.2)

    def config(self, model: str):
        if model not in self._configs:
            try:
                response = self._client.get_model_config(model, headers=self._headers, client_timeout=self.timeout_s)
            except InferenceServerException as exc:
                raise InferenceError(f"Triton model {model!r} at {self.url}: {exc.message()}") from exc
            self._configs[model] = response.config
        return self._configs[model]

    def max_batch_size(self, model: str) -> int:
        return max(1, self.config(model).max_batch_size)

    def infer(self, model: str, input_name: str, array: np.ndarray, output_names) -> dict[str, np.ndarray]:
        request = triton_grpc.InferInput(input_name, list(array.shape), "FP32")
        request.set_data_from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        try:
            result = self._client.infer(
                model, [request], outputs=[triton_grpc.InferRequestedOutput(n) for n in output_names],
                headers=self._headers, client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise InferenceError(f"Triton model {model!r}: {exc.message()}") from exc
        return {name: result.as_numpy(name) for name in output_names}
