"""The DeepStream graph description and its configs, checked without DeepStream: every element
and probe, every config file and path inside it, and the configs against triton_models/
(model names, tensor names, dims, batch sizes, label counts). DeepStream itself has not parsed
these files here; this checks what can be checked by reading them."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from uuid import uuid4

import pytest
import yaml

from vigil.pipeline.deepstream import backend as ds_backend
from vigil.pipeline.deepstream.graph import (CLASS_FACE_CROP, CONFIG_FILES, EMBEDDER_ID, FACE_DETECTOR_ID,
                                             PERSON_DETECTOR_ID, SELECTOR_ID, GraphSettings, build_graph,
                                             source_plan)
from vigil.pipeline.streams import ProcessingSettings, StreamSpec

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
MODELS = ROOT / "triton_models"
ENTRYPOINT = (ROOT / "deploy/docker/gpu-entrypoint.sh").read_text()
KNOWN_FACTORIES = {"nvstreammux", "nvinfer", "nvinferserver", "nvtracker", "fakesink"}


def settings(**kw) -> GraphSettings:
    return GraphSettings(configs_dir=CONFIGS, **kw)


def pbtxt(model: str) -> dict:
    """The fields of a config.pbtxt the DeepStream configs must agree with."""
    text = (MODELS / model / "config.pbtxt").read_text()
    tensors = {}
    for kind in ("input", "output"):
        block = re.search(kind + r"\s*\[(.*?)\n\]", text, re.S).group(1)
        for name, dims in re.findall(r'name:\s*"([^"]+)".*?dims:\s*\[([^\]]*)\]', block):
            tensors[name] = (kind, [int(d) for d in dims.split(",")])
    return {"name": re.search(r'^name:\s*"([^"]+)"', text, re.M).group(1),
            "max_batch_size": int(re.search(r"max_batch_size:\s*(\d+)", text).group(1)), "tensors": tensors}


def nvinfer(file: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(CONFIGS / file)
    return parser["property"]


@pytest.mark.parametrize("kw", [{}, {"new_muxer": True}, {"person_detector": False}, {"triton_mode": "capi"}])
def test_graph_elements_links_probes(kw):
    graph = build_graph(settings(**kw))
    names = [e.name for e in graph.elements]
    assert len(set(names)) == len(names)
    assert {e.factory for e in graph.elements} <= KNOWN_FACTORIES
    assert graph.links == list(zip(names, names[1:]))  # one chain, muxer to sink
    assert names[0] == "muxer" and names[-1] == "sink"
    assert ("pgie-persons" in names) == kw.get("person_detector", True)
    for probe in graph.probes:
        assert probe.element in names
        assert probe.pad in ("src", "sink")
        assert callable(getattr(ds_backend.DeepStreamBackend, "_probe_" + probe.handler))
    for element in graph.elements:
        for key, value in element.properties.items():
            assert re.fullmatch(r"[a-z][a-z0-9-]*", key), key  # GObject property names
            if key.endswith(("config-file-path", "config-file")):
                assert Path(value).is_file(), f"{element.name}.{key} → {value}"
    mux = graph.element("muxer").properties
    batch = mux["batch-size"]
    for name in ("pgie-faces", "pgie-persons"):
        if name in names:
            assert graph.element(name).properties["batch-size"] == batch
    if kw.get("new_muxer"):
        assert "width" not in mux and Path(mux["config-file-path"]).name == CONFIG_FILES["muxer:new"]
    else:
        assert (mux["width"], mux["height"]) == GraphSettings().muxer_size and mux["live-source"]


def test_every_config_file_exists_and_relative_paths_resolve():
    for file in CONFIG_FILES.values():
        assert (CONFIGS / file).is_file(), file
    for file in ("pgie_face_detector.txt", "pgie_person_detector.txt"):
        props = nvinfer(file)
        assert (CONFIGS / props["labelfile-path"]).is_file()
        onnx = (CONFIGS / props["onnx-file"]).resolve()
        assert onnx.parent.parent.parent == MODELS.resolve()  # triton_models/<model>/1/model.onnx


def test_face_detector_config_matches_triton_model():
    model, props = pbtxt("face_detector"), nvinfer("pgie_face_detector.txt")
    assert props["onnx-file"] == f"../triton_models/{model['name']}/1/model.onnx"
    outputs = [n for n, (kind, _) in model["tensors"].items() if kind == "output"]
    assert props["output-blob-names"].split(";") == outputs
    c, h, w = (int(v) for v in props["infer-dims"].split(";"))
    assert model["tensors"]["input"] == ("input", [3, -1, -1]) and c == 3 and h % 32 == 0 and w % 32 == 0
    assert (w, h) == GraphSettings().face_network_size
    assert int(props["batch-size"]) <= model["max_batch_size"] and int(props["batch-size"]) == GraphSettings().batch_size
    assert int(props["gie-unique-id"]) == FACE_DETECTOR_ID
    assert props["network-type"] == "100" and props["output-tensor-meta"] == "1"
    assert props["model-color-format"] == "1" and float(props["net-scale-factor"]) == 1.0  # BGR 0..255
    labels = (CONFIGS / props["labelfile-path"]).read_text().split("\n")
    assert len([x for x in labels if x]) == int(props["num-detected-classes"]) == 1
    # the engine nvinfer loads is the one the image's entrypoint builds, at the same shape
    assert props["model-engine-file"] == "/var/lib/vigil/engines/face_detector.plan"
    assert '"$ENGINES/face_detector.plan" input 3x384x640' in ENTRYPOINT


def test_person_detector_config_matches_triton_model():
    model, props = pbtxt("person_detector"), nvinfer("pgie_person_detector.txt")
    assert props["onnx-file"] == f"../triton_models/{model['name']}/1/model.onnx"
    [(name, (_, dims))] = [(n, t) for n, t in model["tensors"].items() if t[0] == "input"]
    assert [int(v) for v in props["infer-dims"].split(";")] == dims
    assert (dims[2], dims[1]) == GraphSettings().person_network_size
    [(output, (_, out_dims))] = [(n, t) for n, t in model["tensors"].items() if t[0] == "output"]
    assert props["output-blob-names"] == output == "output0"
    labels = [x for x in (CONFIGS / props["labelfile-path"]).read_text().split("\n") if x]
    assert len(labels) == int(props["num-detected-classes"]) == out_dims[0] - 4 == 80 and labels[0] == "person"
    assert int(props["batch-size"]) <= model["max_batch_size"]
    assert int(props["gie-unique-id"]) == PERSON_DETECTOR_ID
    assert props["model-engine-file"] == "/var/lib/vigil/engines/person_detector.plan"
    assert f'"$ENGINES/person_detector.plan" {name} 3x640x640' in ENTRYPOINT


@pytest.mark.parametrize("variant", ["grpc", "capi"])
def test_embedder_config_matches_triton_model(variant):
    model = pbtxt("face_embedder")
    text = (CONFIGS / CONFIG_FILES[f"sgie-embedder:{variant}"]).read_text()

    def field(name):
        return re.search(rf"\b{name}:\s*\"?([^\"\n]+)\"?", text).group(1).strip()

    assert field("model_name") == model["name"]
    assert field("tensor_name") == "data" and model["tensors"]["data"] == ("input", [3, 112, 112])
    assert int(field("max_batch_size")) <= model["max_batch_size"]
    assert int(field("unique_id")) == EMBEDDER_ID
    assert int(field("operate_on_gie_id")) == SELECTOR_ID
    assert re.search(r"operate_on_class_ids:\s*\[\s*%d\s*\]" % CLASS_FACE_CROP, text)
    assert "output_tensor_meta: true" in text and "IMAGE_FORMAT_RGB" in text  # SFace takes RGB 0..255
    assert "PROCESS_MODE_CLIP_OBJECTS" in text
    assert text.count("{") == text.count("}")
    if variant == "grpc":
        assert re.search(r'url:\s*"[^"]+:\d+"', text)
    else:
        root = field("root")
        assert root == "/var/lib/vigil/triton_repository" and "VIGIL_TRITON_REPOSITORY:-" + root in ENTRYPOINT
        assert '"$REPO/face_embedder/1/model.plan" data 3x112x112 32' in ENTRYPOINT
    assert model["tensors"]["fc1"] == ("output", [128])


def test_rendered_embedder_config(tmp_path):
    out = ds_backend.render_embedder_config(CONFIGS / CONFIG_FILES["sgie-embedder:grpc"], "10.0.0.5:9001", tmp_path)
    assert 'url: "10.0.0.5:9001"' in out.read_text() and "triton:8001" not in out.read_text()


def test_tracker_and_muxer_configs():
    text = (CONFIGS / CONFIG_FILES["tracker"]).read_text()
    assert text.startswith("%YAML:1.0")  # NvMultiObjectTracker's header
    tracker = yaml.safe_load(text.split("\n", 1)[1])
    assert {"BaseConfig", "TargetManagement", "DataAssociator", "StateEstimator", "VisualTracker"} <= set(tracker)
    assert tracker["DataAssociator"]["checkClassMatch"] == 1  # faces never turn into persons
    assert tracker["VisualTracker"]["visualTrackerType"] == 1  # NvDCF
    assert tracker["TrajectoryManagement"]["useUniqueID"] == 1
    mux = configparser.ConfigParser()
    mux.read(CONFIGS / CONFIG_FILES["muxer:new"])
    assert int(mux["property"]["batch-size"]) == GraphSettings().batch_size


def test_source_plans():
    s = settings()
    spec = StreamSpec(uuid4(), None, "file:///media/a.mp4?loop=true&rate=native", 25)
    plan = source_plan(spec, 4, s)
    assert plan.uri == "file:///media/a.mp4" and plan.properties["file-loop"] is True
    assert plan.mux_pad == "sink_4" and plan.name == "source-4"
    rtsp = StreamSpec(uuid4(), None, "rtsp://cam.local:554/live", 30,
                      ProcessingSettings(max_inference_fps=10), username="op", password="p@ss")
    plan = source_plan(rtsp, 0, s)
    assert plan.uri == "rtsp://op:p%40ss@cam.local:554/live"
    assert plan.properties["rtsp-reconnect-interval"] == s.rtsp_reconnect_interval_s
    assert plan.properties["drop-frame-interval"] == 3 and "file-loop" not in plan.properties


def test_backend_without_deepstream(monkeypatch):
    """Here there is no pyds: the module imports, and asking for the backend says what is missing."""
    from vigil.pipeline.backend import choose_backend
    from vigil.settings import VigilSettings

    assert choose_backend("auto") == "portable"
    with pytest.raises(ValueError, match="pyds"):
        choose_backend("deepstream")
    gs = ds_backend.graph_settings_from(VigilSettings(), env={"VIGIL_DS_TRITON_MODE": "capi"})
    assert gs.triton_mode == "capi" and gs.batch_size == VigilSettings().node.batch_size
    assert gs.person_interval == VigilSettings().node.person_detect_every - 1
