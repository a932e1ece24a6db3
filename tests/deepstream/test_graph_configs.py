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

from vigil.models import objects
from vigil.pipeline.backend import choose_backend, deepstream_available
from vigil.pipeline.deepstream.graph import (
    CONFIG_FILES,
    FACE_DETECTOR_ID,
    OBJECT_DETECTOR_ID,
    RGBA_CAPS,
    Caps,
    GraphSettings,
    build_graph,
    source_plan,
)
from vigil.pipeline.deepstream.probes import Probes
from vigil.pipeline.streams import ProcessingSettings, StreamSpec
from vigil.settings import VigilSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
MODELS = ROOT / "triton_models"
ENTRYPOINT = (ROOT / "deploy/docker/gpu-entrypoint.sh").read_text()


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


FULL_CHAIN = ["muxer", "pgie-faces", "pgie-objects", "tracker", "rgba", "rgba-caps", "sink"]
FULL_PROBES = [("muxer", "src", "on_muxer_event", "event"), ("muxer", "src", "on_batch_formed", "buffer"),
               ("pgie-faces", "src", "on_faces", "buffer"), ("pgie-objects", "src", "on_objects", "buffer"),
               ("rgba-caps", "src", "on_tracked", "buffer")]
FACTORIES = {"muxer": "nvstreammux", "pgie-faces": "nvinfer", "pgie-objects": "nvinfer", "tracker": "nvtracker",
             "rgba": "nvvideoconvert", "rgba-caps": "capsfilter", "sink": "fakesink"}
# the config file each element reads (hand-written: a wrong key in CONFIG_FILES fails here)
CONFIG_OF = {"pgie-faces": "pgie_face_detector.txt", "pgie-objects": "pgie_object_detector.txt",
             "tracker": "tracker_nvdcf.yml"}


@pytest.mark.parametrize("kw", [{}, {"new_muxer": True}, {"object_detector": False}])
def test_graph_elements_links_probes(kw):
    graph = build_graph(settings(batch_size=4, gpu_id=1, **kw))
    chain = [n for n in FULL_CHAIN if kw.get("object_detector", True) or n != "pgie-objects"]
    assert [e.name for e in graph.elements] == chain
    assert {e.name: e.factory for e in graph.elements} == {n: FACTORIES[n] for n in chain}
    assert graph.links == list(zip(chain, chain[1:]))  # one chain, muxer to sink
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
    # the face crops are cut from RGBA frames in GPU memory: what get_nvds_buf_surface_gpu maps
    assert props["rgba-caps"]["caps"] == Caps(RGBA_CAPS) and "memory:NVMM" in RGBA_CAPS and "RGBA" in RGBA_CAPS
    # the settings given reach every element that batches or runs on the GPU
    batched = ["muxer", "pgie-faces", "pgie-objects"]
    assert [props[n]["batch-size"] for n in batched if n in props] == [4] * len([n for n in batched if n in props])
    on_gpu = ["pgie-faces", "pgie-objects", "tracker", "rgba"] + ([] if kw.get("new_muxer") else ["muxer"])
    assert {n: props[n]["gpu-id"] for n in on_gpu if n in props} == {n: 1 for n in on_gpu if n in props}
    if kw.get("object_detector", True):
        assert props["pgie-objects"]["interval"] == 2 and props["pgie-objects"]["unique-id"] == OBJECT_DETECTOR_ID
    mux = props["muxer"]
    if kw.get("new_muxer"):
        assert "width" not in mux and Path(mux["config-file-path"]) == CONFIGS / "streammux.txt"
    else:
        assert (mux["width"], mux["height"]) == (1920, 1080) and mux["live-source"] is True
        assert "config-file-path" not in mux


def test_every_config_file_exists_and_relative_paths_resolve():
    for file in CONFIG_FILES.values():
        assert (CONFIGS / file).is_file(), file
    assert not (CONFIGS / "pgie_person_detector.txt").exists()  # replaced by the object detector
    for file in ("pgie_face_detector.txt", "pgie_object_detector.txt"):
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


def test_object_detector_config_matches_triton_model_and_the_shared_decoder():
    """nvinfer feeds the detector exactly what the portable backend does (vigil.models.objects:
    BGR 0..255, letterboxed top-left onto 416x416) and attaches the two tensors the probe decodes."""
    model, props = pbtxt(objects.MODEL_NAME), nvinfer("pgie_object_detector.txt")
    assert props["onnx-file"] == f"../triton_models/{model['name']}/1/model.onnx"
    [(name, (_, dims))] = [(n, t) for n, t in model["tensors"].items() if t[0] == "input"]
    assert name == objects.INPUT
    assert [int(v) for v in props["infer-dims"].split(";")] == dims == [3, objects.INPUT_SIZE, objects.INPUT_SIZE]
    assert GraphSettings().object_network_size == objects.INPUT_SIZE
    outputs = {n: d for n, (kind, d) in model["tensors"].items() if kind == "output"}
    assert props["output-blob-names"].split(";") == [objects.SCORES, objects.BOXES] == list(outputs)
    assert outputs == {objects.SCORES: [objects.ANCHORS, len(objects.COCO_LABELS)], objects.BOXES: [objects.ANCHORS, 4]}
    assert props["network-type"] == "100" and props["output-tensor-meta"] == "1"  # raw tensors, no C++ parser
    assert props["model-color-format"] == "1" and float(props["net-scale-factor"]) == 1.0  # BGR 0..255
    assert props["maintain-aspect-ratio"] == "1" and props["symmetric-padding"] == "0"  # top-left letterbox
    labels = [x for x in (CONFIGS / props["labelfile-path"]).read_text().split("\n") if x]
    assert tuple(labels) == objects.COCO_LABELS and int(props["num-detected-classes"]) == len(labels)
    assert int(props["batch-size"]) == GraphSettings().batch_size <= model["max_batch_size"]
    assert int(props["gie-unique-id"]) == OBJECT_DETECTOR_ID
    # the engine nvinfer loads is the one the image's entrypoint builds, at the same shape
    assert props["model-engine-file"] == f"/var/lib/vigil/engines/{objects.MODEL_NAME}.plan"
    assert f'"$ENGINES/{objects.MODEL_NAME}.plan" {name} 3x{objects.INPUT_SIZE}x{objects.INPUT_SIZE}' in ENTRYPOINT


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
                                 "deepstream": {"engine_dir": engines, "config_dir": tmp_path}})
    gs = GraphSettings.from_settings(chosen)
    assert (gs.gpu_id, gs.new_muxer, gs.configs_dir) == (3, True, tmp_path)
    assert (gs.batch_size, gs.object_interval) == (6, 3)
    assert gs.object_detector is False  # neither a plan nor an ONNX model of it
    (engines / "object_detector.plan").write_bytes(b"plan")
    assert GraphSettings.from_settings(chosen).object_detector is True
    (engines / "object_detector.plan").unlink()
    (models / "object_detector" / "1").mkdir(parents=True)
    (models / "object_detector" / "1" / "model.onnx").write_bytes(b"onnx")
    assert GraphSettings.from_settings(chosen).object_detector is True
    monkeypatch.delenv("VIGIL_NODE__DEEPSTREAM__GPU_ID")
    defaults = GraphSettings.from_settings(VigilSettings())
    assert (defaults.gpu_id, defaults.configs_dir) == (0, CONFIGS)


@pytest.mark.skipif(deepstream_available(), reason="this host has pyds and a GPU: the backend is available here, "
                    "so there is no missing-DeepStream message to check")
def test_backend_without_deepstream():
    """Here there is no pyds: the module imports, and asking for the backend says what is missing."""
    import vigil.pipeline.deepstream.backend  # noqa: F401 - imports without pyds and GStreamer

    assert choose_backend("auto") == "portable"
    with pytest.raises(ValueError, match="pyds"):
        choose_backend("deepstream")
