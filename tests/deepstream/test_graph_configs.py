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

from vigil.pipeline.backend import choose_backend, deepstream_available
from vigil.pipeline.deepstream.graph import (
    CLASS_FACE_CROP,
    CONFIG_FILES,
    EMBEDDER_ID,
    FACE_DETECTOR_ID,
    PERSON_DETECTOR_ID,
    SELECTOR_ID,
    GraphSettings,
    build_graph,
    render_embedder_config,
    source_plan,
)
from vigil.pipeline.deepstream.probes import Probes
from vigil.pipeline.streams import ProcessingSettings, StreamSpec
from vigil.settings import VigilSettings

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


FULL_CHAIN = ["muxer", "pgie-faces", "pgie-persons", "tracker", "sgie-embedder", "sink"]
LINKS = {True: [("muxer", "pgie-faces"), ("pgie-faces", "pgie-persons"), ("pgie-persons", "tracker"),
                ("tracker", "sgie-embedder"), ("sgie-embedder", "sink")],
         False: [("muxer", "pgie-faces"), ("pgie-faces", "tracker"), ("tracker", "sgie-embedder"),
                 ("sgie-embedder", "sink")]}  # by person_detector
FULL_PROBES = [("muxer", "src", "on_muxer_event", "event"), ("muxer", "src", "on_batch_formed", "buffer"),
               ("pgie-faces", "src", "on_faces", "buffer"), ("pgie-persons", "src", "on_persons", "buffer"),
               ("tracker", "src", "on_tracked", "buffer"), ("sgie-embedder", "src", "on_embedded", "buffer"),
               ("sink", "sink", "on_collect", "buffer")]
FACTORIES = {"muxer": "nvstreammux", "pgie-faces": "nvinfer", "pgie-persons": "nvinfer", "tracker": "nvtracker",
             "sgie-embedder": "nvinferserver", "sink": "fakesink"}
# the config file each element reads, by variant (hand-written: a wrong key in CONFIG_FILES fails here)
CONFIG_OF = {"pgie-faces": "pgie_face_detector.txt", "pgie-persons": "pgie_person_detector.txt",
             "tracker": "tracker_nvdcf.yml"}


@pytest.mark.parametrize("kw", [{}, {"new_muxer": True}, {"person_detector": False}, {"triton_mode": "capi"}])
def test_graph_elements_links_probes(kw):
    graph = build_graph(settings(batch_size=4, gpu_id=1, **kw))
    chain = [n for n in FULL_CHAIN if kw.get("person_detector", True) or n != "pgie-persons"]
    assert [e.name for e in graph.elements] == chain
    assert {e.name: e.factory for e in graph.elements} == {n: FACTORIES[n] for n in chain}
    assert graph.links == LINKS[kw.get("person_detector", True)]  # one chain, muxer to sink
    assert [(p.element, p.pad, p.handler, p.kind) for p in graph.probes] == \
        [p for p in FULL_PROBES if p[0] in chain]
    for probe in graph.probes:
        assert callable(getattr(Probes, probe.handler))
    for element in graph.elements:
        for key, value in element.properties.items():
            assert re.fullmatch(r"[a-z][a-z0-9-]*", key), key  # GObject property names
            if key.endswith(("config-file-path", "config-file")):
                assert Path(value).is_file(), f"{element.name}.{key} → {value}"
    props = {e.name: e.properties for e in graph.elements}
    for name, file in CONFIG_OF.items():
        if name in props:
            key = "ll-config-file" if name == "tracker" else "config-file-path"
            assert Path(props[name][key]) == CONFIGS / file
    embedder = f"sgie_face_embedder_{kw.get('triton_mode', 'grpc')}.txt"
    assert Path(props["sgie-embedder"]["config-file-path"]) == CONFIGS / embedder
    # the settings given reach every element that batches or runs on the GPU
    batched = ["muxer", "pgie-faces", "pgie-persons"]
    assert [props[n]["batch-size"] for n in batched if n in props] == [4] * len([n for n in batched if n in props])
    on_gpu = ["pgie-faces", "pgie-persons", "tracker"] + ([] if kw.get("new_muxer") else ["muxer"])
    assert {n: props[n]["gpu-id"] for n in on_gpu if n in props} == {n: 1 for n in on_gpu if n in props}
    if kw.get("person_detector", True):
        assert props["pgie-persons"]["interval"] == 2
    mux = props["muxer"]
    if kw.get("new_muxer"):
        assert "width" not in mux and Path(mux["config-file-path"]) == CONFIGS / "streammux.txt"
    else:
        assert (mux["width"], mux["height"]) == (1920, 1080) and mux["live-source"] is True
        assert "config-file-path" not in mux


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
    assert (
        int(props["batch-size"]) <= model["max_batch_size"] and int(props["batch-size"]) == GraphSettings().batch_size
    )
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
    assert re.search(rf"operate_on_class_ids:\s*\[\s*{CLASS_FACE_CROP}\s*\]", text)
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
    out = render_embedder_config(CONFIGS / CONFIG_FILES["sgie-embedder:grpc"], "10.0.0.5:9001", tmp_path)
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
    s = settings(gpu_id=1, rtsp_reconnect_interval_s=7, rtsp_latency_ms=300)
    spec = StreamSpec(uuid4(), None, "file:///media/a.mp4?loop=true&rate=native", 25)
    plan = source_plan(spec, 4, s)
    assert plan.uri == "file:///media/a.mp4" and plan.properties["file-loop"] is True
    assert plan.mux_pad == "sink_4" and plan.name == "source-4"
    rtsp = StreamSpec(uuid4(), None, "rtsp://cam.local:554/live", 30,
                      ProcessingSettings(max_inference_fps=10), username="op", password="p@ss")
    plan = source_plan(rtsp, 0, s)
    assert plan.uri == "rtsp://op:p%40ss@cam.local:554/live"
    assert {k: plan.properties[k] for k in ("rtsp-reconnect-interval", "latency", "gpu-id", "uri")} == {
        "rtsp-reconnect-interval": 7, "latency": 300, "gpu-id": 1, "uri": "rtsp://op:p%40ss@cam.local:554/live"}
    assert plan.properties["drop-frame-interval"] == 3 and "file-loop" not in plan.properties


def test_graph_settings_from_node_settings(tmp_path, monkeypatch):
    """[node.deepstream] and the node's batching reach the graph; environment overrides apply."""
    engines, models = tmp_path / "engines", tmp_path / "models"
    engines.mkdir()
    monkeypatch.setenv("VIGIL_NODE__DEEPSTREAM__GPU_ID", "3")
    monkeypatch.setenv("VIGIL_NODE__DEEPSTREAM__NEW_MUXER", "true")
    chosen = VigilSettings(triton={"model_repository": models, "url": "10.0.0.5:9001"},
                           node={"batch_size": 6, "object_detect_every": 4,
                                 "deepstream": {"triton_mode": "capi", "engine_dir": engines, "config_dir": tmp_path}})
    gs = GraphSettings.from_settings(chosen)
    assert (gs.gpu_id, gs.new_muxer, gs.triton_mode, gs.configs_dir) == (3, True, "capi", tmp_path)
    assert (gs.batch_size, gs.person_interval, gs.triton_url) == (6, 3, "10.0.0.5:9001")
    assert gs.person_detector is False  # neither a plan nor an ONNX model of it
    (engines / "person_detector.plan").write_bytes(b"plan")
    assert GraphSettings.from_settings(chosen).person_detector is True
    monkeypatch.delenv("VIGIL_NODE__DEEPSTREAM__GPU_ID")
    defaults = GraphSettings.from_settings(VigilSettings())
    assert (defaults.gpu_id, defaults.triton_mode, defaults.configs_dir) == (0, "grpc", CONFIGS)


@pytest.mark.skipif(deepstream_available(), reason="this host has pyds and a GPU: the backend is available here, "
                    "so there is no missing-DeepStream message to check")
def test_backend_without_deepstream():
    """Here there is no pyds: the module imports, and asking for the backend says what is missing."""
    import vigil.pipeline.deepstream.backend  # noqa: F401 - imports without pyds and GStreamer

    assert choose_backend("auto") == "portable"
    with pytest.raises(ValueError, match="pyds"):
        choose_backend("deepstream")
