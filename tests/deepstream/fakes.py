"""A stand-in for the pyds module, for tests only: pyds cannot be installed where these tests
run (it ships with DeepStream, for NVIDIA GPUs). The classes follow the pyds API and expose only
the attributes listed in pipeline/deepstream/pyds_api.json (from the bindings' documentation),
so code that reaches for an undocumented attribute fails here with AttributeError. Output tensor
layers are real memory: `get_ptr` returns the address of a numpy buffer that meta.py reads
through ctypes, as it reads nvinfer's host buffers.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

API = json.loads((Path(__file__).resolve().parents[2] / "pipeline/deepstream/pyds_api.json").read_text())


def _documented(class_name: str, extra: tuple[str, ...] = ()):
    members = [m for m in API["classes"][class_name] if m not in ("cast",)] + list(extra)

    class Documented:
        __slots__ = tuple(members)

        def __init__(self, **values):
            for key, value in values.items():
                setattr(self, key, value)

        @staticmethod
        def cast(data):
            return data

    Documented.__name__ = class_name
    return Documented


class GList:
    __slots__ = ("data", "next")

    def __init__(self, data, next_=None):
        self.data, self.next = data, next_


def glist(items):
    head = None
    for item in reversed(list(items)):
        head = GList(item, head)
    return head


def items(head):
    out = []
    while head is not None:
        out.append(head.data)
        head = head.next
    return out


NvDsMetaType = enum.Enum("NvDsMetaType", API["classes"]["NvDsMetaType"])
NvDsInferDataType = enum.Enum("NvDsInferDataType", API["classes"]["NvDsInferDataType"])
NvDsBaseMeta = _documented("NvDsBaseMeta")
NvDsBatchMeta = _documented("NvDsBatchMeta")
NvDsFrameMeta = _documented("NvDsFrameMeta")
NvDsObjectMeta = _documented("NvDsObjectMeta")
NvDsComp_BboxInfo = _documented("NvDsComp_BboxInfo")
NvBbox_Coords = _documented("NvBbox_Coords")
NvOSD_RectParams = _documented("NvOSD_RectParams")
NvDsUserMeta = _documented("NvDsUserMeta")
NvDsInferTensorMeta = _documented("NvDsInferTensorMeta", extra=("layers",))  # test-side storage
NvDsInferLayerInfo = _documented("NvDsInferLayerInfo")
NvDsInferDims = _documented("NvDsInferDims")
NvDsObjEncUsrArgs = _documented("NvDsObjEncUsrArgs")


class NvDsObjEncOutParams:
    __slots__ = ("_jpeg",)  # the bindings expose outBuffer() only, not outLen

    def __init__(self, jpeg: bytes):
        self._jpeg = jpeg

    @staticmethod
    def cast(data):
        return data

    def outBuffer(self):
        return np.frombuffer(self._jpeg, dtype=np.uint8)


def new_object():
    return NvDsObjectMeta(
        base_meta=NvDsBaseMeta(meta_type=NvDsMetaType.NVDS_OBJ_META), parent=None, unique_component_id=0,
        class_id=0, object_id=0xFFFFFFFFFFFFFFFF, confidence=0.0, tracker_confidence=0.0,
        detector_bbox_info=NvDsComp_BboxInfo(org_bbox_coords=NvBbox_Coords(left=0.0, top=0.0, width=0.0, height=0.0)),
        tracker_bbox_info=NvDsComp_BboxInfo(org_bbox_coords=NvBbox_Coords(left=0.0, top=0.0, width=0.0, height=0.0)),
        rect_params=NvOSD_RectParams(left=0.0, top=0.0, width=0.0, height=0.0), obj_label="",
        obj_user_meta_list=None, classifier_meta_list=None)


def new_frame(pad_index: int, frame_num: int, *, width=1920, height=1080, ntp_ns=0):
    return NvDsFrameMeta(base_meta=NvDsBaseMeta(meta_type=NvDsMetaType.NVDS_FRAME_META), pad_index=pad_index,
                         source_id=pad_index, batch_id=0, frame_num=frame_num, buf_pts=0, ntp_timestamp=ntp_ns,
                         source_frame_width=width, source_frame_height=height, num_obj_meta=0,
                         obj_meta_list=None, frame_user_meta_list=None)


def new_batch(frames):
    return NvDsBatchMeta(frame_meta_list=glist(frames), num_frames_in_batch=len(frames))


def tensor_user_meta(unique_id: int, tensors: dict[str, np.ndarray], keep: list):
    """NVDSINFER_TENSOR_OUTPUT_META as nvinfer attaches it: one layer per output, host memory."""
    layers = []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        keep.append(array)  # the memory must outlive the meta, as nvinfer's buffers do
        dims = NvDsInferDims(numDims=array.ndim, numElements=int(array.size),
                             d=list(array.shape) + [0] * (8 - array.ndim))
        layers.append(NvDsInferLayerInfo(dataType=NvDsInferDataType.FLOAT, inferDims=dims, dims=dims,
                                         layerName=name, buffer=array, isInput=0, bindingIndex=len(layers)))
    meta = NvDsInferTensorMeta(unique_id=unique_id, num_output_layers=len(layers), layers=layers)
    return NvDsUserMeta(base_meta=NvDsBaseMeta(meta_type=NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META),
                        user_meta_data=meta)


def attach(meta_list_owner, attribute: str, user_meta) -> None:
    setattr(meta_list_owner, attribute, glist(items(getattr(meta_list_owner, attribute)) + [user_meta]))


class FakePyds(SimpleNamespace):
    """The module: the functions of pyds_api.json the backend calls, on the structures above."""

    def __init__(self):
        super().__init__()
        for name, value in globals().items():
            if name in API["classes"] or name in ("NvDsObjEncOutParams",):
                setattr(self, name, value)
        self.batches = {}
        self.encoded = []
        self.pending_encodes = []
        self.contexts = 0

    def gst_buffer_get_nvds_batch_meta(self, address):
        return self.batches.get(address)

    def nvds_acquire_obj_meta_from_pool(self, _batch):
        return new_object()

    def nvds_add_obj_meta_to_frame(self, frame, obj, parent):
        obj.parent = parent
        frame.obj_meta_list = glist(items(frame.obj_meta_list) + [obj])
        frame.num_obj_meta += 1

    def get_nvds_LayerInfo(self, tensor_meta, index):
        return tensor_meta.layers[index]

    @staticmethod
    def get_ptr(buffer):
        return buffer.ctypes.data

    def nvds_obj_enc_create_context(self, gpu_id):
        self.contexts += 1
        return ("ctx", gpu_id)

    def nvds_obj_enc_destroy_context(self, ctx):
        self.contexts -= 1

    def nvds_obj_enc_process(self, ctx, args, buffer_address, obj, frame):
        assert args.attachUsrMeta and not args.saveImg
        self.pending_encodes.append(obj)

    def nvds_obj_enc_finish(self, ctx):
        for obj in self.pending_encodes:
            r = obj.rect_params
            image = np.full((max(int(r.height), 8), max(int(r.width), 8), 3), 127, np.uint8)
            jpeg = cv2.imencode(".jpg", image)[1].tobytes()
            attach(obj, "obj_user_meta_list", NvDsUserMeta(
                base_meta=NvDsBaseMeta(meta_type=NvDsMetaType.NVDS_CROP_IMAGE_META),
                user_meta_data=NvDsObjEncOutParams(jpeg)))
            self.encoded.append(obj)
        self.pending_encodes = []
