#!/usr/bin/env bash
# First start of a GPU node (or of the Triton pod's init container): build TensorRT plans from
# the ONNX models for this GPU, then run the command (default: the node agent).
#   $ENGINES/face_detector.plan     nvinfer engine, YuNet at 640x384, batch 1..8
#   $ENGINES/object_detector.plan   nvinfer engine, NanoDet-g at 416x416, batch 1..8
#   $REPO/                          Triton repository: face_embedder as tensorrt_plan
#                                   (batch 1..32), the detectors as ONNX
# A plan is rebuilt only when missing, or when its ONNX file is newer. `build-only` as the
# command builds and exits (the Triton pod's init container).
set -euo pipefail

SRC=${VIGIL_TRITON__MODEL_REPOSITORY:-/opt/vigil/triton_models}
ENGINES=${VIGIL_NODE__DEEPSTREAM__ENGINE_DIR:-/var/lib/vigil/engines}  # the node's setting, same default
REPO=${VIGIL_TRITON_REPOSITORY:-/var/lib/vigil/triton_repository}
TRTEXEC=${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}
BATCH=${VIGIL_NODE__BATCH_SIZE:-8}
mkdir -p "$ENGINES" "$REPO"

build() {  # onnx plan input-name CxHxW max-batch
  local onnx=$1 plan=$2 input=$3 chw=$4 max=$5
  [ -f "$onnx" ] || { echo "skip $plan: no $onnx"; return 0; }
  if [ -f "$plan" ] && [ "$plan" -nt "$onnx" ]; then echo "keep $plan"; return 0; fi
  echo "building $plan from $onnx (batch 1..$max, $chw)"
  "$TRTEXEC" --onnx="$onnx" --saveEngine="$plan.tmp" --fp16 \
    --minShapes="$input:1x$chw" --optShapes="$input:${max}x$chw" --maxShapes="$input:${max}x$chw" \
    > "$plan.log" 2>&1 || { echo "trtexec failed, see $plan.log"; tail -n 20 "$plan.log"; exit 1; }
  mv "$plan.tmp" "$plan"
}

build "$SRC/face_detector/1/model.onnx" "$ENGINES/face_detector.plan" input 3x384x640 "$BATCH"
build "$SRC/object_detector/1/model.onnx" "$ENGINES/object_detector.plan" input 3x416x416 "$BATCH"

# Triton repository: same model names, tensors and dims as triton_models/, the embedder as a plan
for model in face_detector object_detector; do
  if [ -f "$SRC/$model/1/model.onnx" ]; then
    mkdir -p "$REPO/$model/1"
    cp "$SRC/$model/config.pbtxt" "$REPO/$model/config.pbtxt"
    cp -u "$SRC/$model/1/model.onnx" "$REPO/$model/1/model.onnx"
  fi
done
mkdir -p "$REPO/face_embedder/1"
build "$SRC/face_embedder/1/model.onnx" "$REPO/face_embedder/1/model.plan" data 3x112x112 32
sed -e 's/^platform: "onnxruntime_onnx"/platform: "tensorrt_plan"/' \
    "$SRC/face_embedder/config.pbtxt" > "$REPO/face_embedder/config.pbtxt"

if [ "${1:-}" = "build-only" ]; then exit 0; fi
exec "$@"
