"""The DeepStream element graph as data: which elements, with which properties and config
files, linked how, probed where. backend.py builds GStreamer objects from this description;
the tests check it (every element, property and config cross-reference) without GStreamer.

    nvurisrcbin (one per stream, added at runtime; its parser's H.264 tapped for clips) ─▶ nvstreammux
      ─▶ nvinfer  pgie-faces    YuNet, raw tensors (output-tensor-meta)     probe: faces → objects
      ─▶ nvinfer  pgie-objects  NanoDet, raw tensors, every n-th frame      probe: persons, vehicles → objects
      ─▶ nvtracker              NvDCF on persons, vehicles and faces
      ─▶ nvvideoconvert + capsfilter  RGBA in GPU memory                    probe: faces worth embedding
           aligned and cropped on the GPU surface (CuPy), snapshots (object encoder), metadata → records
      ─▶ fakesink
    The records' face crops are embedded through Triton off the streaming threads (backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

from vigil.pipeline.streams import StreamSpec

if TYPE_CHECKING:
    from vigil.settings import VigilSettings

# Object classes inside the pipeline (NvDsObjectMeta.class_id), independent of model label ids.
CLASS_PERSON = 0
CLASS_FACE = 1
CLASS_VEHICLE = 2  # car, bus, truck, motorcycle, bicycle (obj_label says which)

# gie-unique-id / unique_component_id of each producer of metadata
FACE_DETECTOR_ID = 1
OBJECT_DETECTOR_ID = 2

UNTRACKED_OBJECT_ID = 0xFFFFFFFFFFFFFFFF  # NvDsObjectMeta.object_id before the tracker sets it

OBJECT_MODEL = "object_detector"  # triton_models/<name>, and the engine <name>.plan

SOURCE_PREFIX = "source-"  # each stream's nvurisrcbin is source-<muxer pad index>

NVDS_ROOT = "/opt/nvidia/deepstream/deepstream"
TRACKER_LIB = f"{NVDS_ROOT}/lib/libnvds_nvmultiobjecttracker.so"

CONFIG_FILES = {
    "pgie-faces": "pgie_face_detector.txt",
    "pgie-objects": "pgie_object_detector.txt",
    "tracker": "tracker_nvdcf.yml",
    "muxer:new": "streammux.txt",
}

# What get_nvds_buf_surface_gpu can map (RGB/RGBA only, NVIDIA's bindings refuse NV12): the probe
# that crops faces sits behind a conversion to this, in GPU memory.
RGBA_CAPS = "video/x-raw(memory:NVMM), format=RGBA"


SOURCE_CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"  # a source checkout or editable install


@dataclass(frozen=True)
class GraphSettings:
    configs_dir: Path = SOURCE_CONFIGS_DIR
    batch_size: int = 8  # frames per batch across streams: muxer, detectors and tracker agree
    muxer_size: tuple[int, int] = (1920, 1080)
    face_network_size: tuple[int, int] = (640, 384)  # YuNet input (width, height) of the nvinfer engine
    object_network_size: int = 416  # the object detector's square input (vigil.models.objects.INPUT_SIZE)
    object_detector: bool = True  # False when no object detector is installed
    object_interval: int = 2  # frames skipped between object inferences (object_detect_every - 1)
    gpu_id: int = 0
    new_muxer: bool = False  # DeepStream's USE_NEW_NVSTREAMMUX=yes
    batched_push_timeout_us: int = 40_000
    tracker_size: tuple[int, int] = (960, 544)
    rtsp_reconnect_interval_s: int = 5
    rtsp_latency_ms: int = 200

    def config(self, key: str) -> Path:
        return self.configs_dir / CONFIG_FILES[key]

    @classmethod
    def from_settings(cls, settings: VigilSettings) -> GraphSettings:
        node, ds = settings.node, settings.node.deepstream
        onnx = Path(settings.triton.model_repository) / OBJECT_MODEL / "1" / "model.onnx"
        return cls(
            configs_dir=ds.config_dir or SOURCE_CONFIGS_DIR, batch_size=node.batch_size,
            object_detector=onnx.is_file() or (ds.engine_dir / f"{OBJECT_MODEL}.plan").is_file(),
            object_interval=max(0, node.object_detect_every - 1), gpu_id=ds.gpu_id, new_muxer=ds.new_muxer)


@dataclass(frozen=True)
class Caps:
    """A GstCaps property value, by its string form (the backend parses it)."""

    text: str


@dataclass(frozen=True)
class Element:
    name: str
    factory: str
    properties: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    element: str
    pad: str
    handler: str  # the method of probes.Probes
    kind: str = "buffer"  # "buffer" or "event"


@dataclass(frozen=True)
class Graph:
    elements: list[Element]
    links: list[tuple[str, str]]  # static links in order; sources link to the muxer at runtime
    probes: list[Probe]

    def element(self, name: str) -> Element:
        for element in self.elements:
            if element.name == name:
                return element
        raise KeyError(name)


def build_graph(s: GraphSettings) -> Graph:
    mux_w, mux_h = s.muxer_size
    if s.new_muxer:
        # the new muxer scales nothing and reads its batching policy from a config file
        muxer = Element("muxer", "nvstreammux", {"batch-size": s.batch_size,
                                                  "config-file-path": str(s.config("muxer:new")),
                                                  "sync-inputs": False, "attach-sys-ts": True})
    else:
        muxer = Element("muxer", "nvstreammux", {
            "batch-size": s.batch_size, "width": mux_w, "height": mux_h, "gpu-id": s.gpu_id,
            "batched-push-timeout": s.batched_push_timeout_us, "live-source": True,
            "attach-sys-ts": True, "enable-padding": False, "nvbuf-memory-type": 0})
    elements = [
        muxer,
        Element("pgie-faces", "nvinfer", {"config-file-path": str(s.config("pgie-faces")),
                                          "batch-size": s.batch_size, "gpu-id": s.gpu_id,
                                          "unique-id": FACE_DETECTOR_ID}),
    ]
    if s.object_detector:
        elements.append(Element("pgie-objects", "nvinfer", {
            "config-file-path": str(s.config("pgie-objects")), "batch-size": s.batch_size, "gpu-id": s.gpu_id,
            "unique-id": OBJECT_DETECTOR_ID, "interval": s.object_interval}))
    elements += [
        Element("tracker", "nvtracker", {
            "ll-lib-file": TRACKER_LIB, "ll-config-file": str(s.config("tracker")),
            "tracker-width": s.tracker_size[0], "tracker-height": s.tracker_size[1], "gpu-id": s.gpu_id,
            "display-tracking-id": False}),
        Element("rgba", "nvvideoconvert", {"gpu-id": s.gpu_id}),
        Element("rgba-caps", "capsfilter", {"caps": Caps(RGBA_CAPS)}),
        Element("sink", "fakesink", {"sync": False, "async": False, "enable-last-sample": False}),
    ]
    names = [e.name for e in elements]
    links = list(zip(names, names[1:]))
    probes = [
        # the muxer forwards EOS once every pad has had one; a node with no streams left must
        # keep running for the next assignment (Savant drops it the same way)
        Probe("muxer", "src", "on_muxer_event", kind="event"),
        Probe("muxer", "src", "on_batch_formed"),
        Probe("pgie-faces", "src", "on_faces"),
    ]
    if s.object_detector:
        probes.append(Probe("pgie-objects", "src", "on_objects"))
    probes.append(Probe("rgba-caps", "src", "on_tracked"))
    return Graph(elements, links, probes)


@dataclass(frozen=True)
class SourcePlan:
    name: str
    uri: str  # with credentials: never log it
    properties: dict[str, object]
    mux_pad: str


def source_plan(spec: StreamSpec, pad_index: int, s: GraphSettings) -> SourcePlan:
    """The nvurisrcbin of one stream. Vigil's `?loop=true` on file URLs becomes file-loop (the
    query is not part of the file name); `rate=` has no per-source equivalent on DeepStream
    (files decode as fast as the pipeline runs). max_inference_fps becomes the decoder's
    drop-frame-interval (keep 1 frame in n)."""
    url = spec.url_with_credentials()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    props: dict[str, object] = {"gpu-id": s.gpu_id, "cudadec-memtype": 0}
    if parts.scheme == "file":
        uri = urlunsplit(parts._replace(query=""))
        props["file-loop"] = query.get("loop", ["false"])[0].lower() in ("1", "true", "yes")
    else:
        uri = url
        if parts.scheme in ("rtsp", "rtsps"):
            props.update({"rtsp-reconnect-interval": s.rtsp_reconnect_interval_s, "rtsp-reconnect-attempts": -1,
                          "latency": s.rtsp_latency_ms, "drop-on-latency": True})
    limit = spec.settings.max_inference_fps
    if limit and spec.fps and spec.fps > limit:
        props["drop-frame-interval"] = max(1, round(spec.fps / limit))
    props["uri"] = uri
    return SourcePlan(name=f"{SOURCE_PREFIX}{pad_index}", uri=uri, properties=props, mux_pad=f"sink_{pad_index}")
