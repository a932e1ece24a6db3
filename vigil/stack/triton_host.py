"""The embedded Triton: PyTriton's bundled tritonserver, run as a stack service.

PyTriton hosts Python inference callables behind a real Triton server, so clients use the same
tritonclient gRPC calls as against a production Triton. The models of the repository
(--model-repository) that have their model file (`vigil models prepare`) are bound at start,
each through onnxruntime (vigil.models.serving); with none, the server still answers health.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vigil.stack.triton_host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--model-repository", type=Path, help="Triton model repository to serve")
    args = parser.parse_args(argv)

    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    config = TritonConfig(
        grpc_address=args.host,
        grpc_port=args.grpc_port,
        http_address=args.host,
        http_port=args.http_port,
        metrics_address=args.host,
        metrics_port=args.metrics_port,
        allow_gpu_metrics=False,
        exit_on_error=True,
        log_verbose=0,
    )
    args.workspace.mkdir(parents=True, exist_ok=True)
    # PyTriton refuses a workspace that exists; one is left behind when the server was killed.
    # The stack runs one server per state directory, so whatever is there is stale.
    shutil.rmtree(args.workspace / "pytriton", ignore_errors=True)
    # SIGTERM from `vigil stack down` takes the same graceful path as Ctrl+C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Model control and statistics stay behind a token (PyTriton's default); Vigil's own clients send it.
    security = TritonSecurityConfig(access_token=os.environ.get("VIGIL_TRITON_ACCESS_TOKEN") or None)
    with Triton(config=config, workspace=args.workspace / "pytriton", security_config=security) as triton:
        if args.model_repository is not None:
            from vigil.logs import configure_logging
            from vigil.models.serving import bind_repository

            configure_logging()  # the stack captures stderr into logs/triton.log
            bind_repository(triton, args.model_repository)
        try:
            triton.serve()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
