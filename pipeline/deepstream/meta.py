"""Small Pythonic views over DeepStream metadata. Every pyds cast, list walk and pointer read of
the backend lives here, so probe code never does raw casts.

`Meta(pyds)` takes the module; `Meta.load()` imports the real one. The tests pass plain Python
objects shaped like pyds's (pyds itself cannot be installed where they run). To a type checker
`self.ds` is the real pyds, so every access here is checked against pyds's published stubs
(tests/deepstream/test_pyds_types.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vigil.pipeline.deepstream.graph import UNTRACKED_OBJECT_ID

if TYPE_CHECKING:  # pyds is imported at run time only where DeepStream is (Meta.load)
    from pyds import (
        NvDsBatchMeta,
        NvDsFrameMeta,
        NvDsInferLayerInfo,
        NvDsObjectMeta,
        NvDsUserMeta,
    )

_CTYPES = {"FLOAT": (ctypes.c_float, np.float32), "HALF": (ctypes.c_uint16, np.float16),
           "INT32": (ctypes.c_int32, np.int32), "INT8": (ctypes.c_int8, np.int8)}


def _capsule_address(capsule) -> int:
    """The pointer a PyCapsule holds (pyds hands the surface's dataPtr over as one)."""
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return int(get_pointer(capsule, None))


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    width: float
    height: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


class Meta:
    def __init__(self, pyds):
        if TYPE_CHECKING:
            import pyds as typed

            self.ds = typed
        else:
            self.ds = pyds
        self._dtypes = {getattr(pyds.NvDsInferDataType, name): spec for name, spec in _CTYPES.items()}

    @classmethod
    def load(cls) -> Meta:
        import pyds

        return cls(pyds)

    # --- walking lists ---------------------------------------------------------------------

    @staticmethod
    def _walk(glist, cast) -> Iterator:
        while glist is not None:
            try:
                item = cast(glist.data)
            except StopIteration:  # pyds signals a list's end this way in some versions
                return
            yield item
            try:
                glist = glist.next
            except StopIteration:
                return

    def batch(self, gst_buffer) -> NvDsBatchMeta | None:
        """The NvDsBatchMeta of a buffer (None when the buffer carries none)."""
        return self.ds.gst_buffer_get_nvds_batch_meta(hash(gst_buffer))

    def frames(self, batch: NvDsBatchMeta) -> Iterator[NvDsFrameMeta]:
        return self._walk(batch.frame_meta_list, self.ds.NvDsFrameMeta.cast)

    def objects(self, frame: NvDsFrameMeta) -> Iterator[NvDsObjectMeta]:
        return self._walk(frame.obj_meta_list, self.ds.NvDsObjectMeta.cast)

    def _user_metas(self, glist, meta_type) -> Iterator[NvDsUserMeta]:
        for user_meta in self._walk(glist, self.ds.NvDsUserMeta.cast):
            if user_meta.base_meta.meta_type == meta_type:
                yield user_meta

    # --- objects ---------------------------------------------------------------------------

    @staticmethod
    def box(obj: NvDsObjectMeta) -> Box:
        """Where the object is now (the tracker's estimate once tracked)."""
        r = obj.rect_params
        return Box(float(r.left), float(r.top), float(r.width), float(r.height))

    @staticmethod
    def detector_box(obj: NvDsObjectMeta) -> Box:
        """The box the detector reported for the object in this frame, before tracking."""
        c = obj.detector_bbox_info.org_bbox_coords
        return Box(float(c.left), float(c.top), float(c.width), float(c.height))

    @staticmethod
    def tracker_id(obj: NvDsObjectMeta) -> int | None:
        object_id = int(obj.object_id)
        return None if object_id == UNTRACKED_OBJECT_ID else object_id

    @staticmethod
    def confidence(obj: NvDsObjectMeta) -> float:
        """The detector's confidence; the tracker's when the object was not detected this frame
        (DeepStream sets -0.1 then)."""
        value = float(obj.confidence)
        return value if value >= 0 else max(float(obj.tracker_confidence), 0.0)

    @staticmethod
    def parent(obj: NvDsObjectMeta) -> NvDsObjectMeta | None:
        return obj.parent

    def add_object(self, batch: NvDsBatchMeta, frame: NvDsFrameMeta, *, class_id: int, component_id: int, box: Box,
                   confidence: float, label: str, parent: NvDsObjectMeta | None = None) -> NvDsObjectMeta:
        """A new NvDsObjectMeta from the batch's pool, attached to the frame (and to a parent)."""
        obj = self.ds.nvds_acquire_obj_meta_from_pool(batch)
        obj.unique_component_id = component_id
        obj.class_id = class_id
        obj.confidence = float(confidence)
        obj.object_id = UNTRACKED_OBJECT_ID
        obj.obj_label = label
        for target in (obj.rect_params, obj.detector_bbox_info.org_bbox_coords):
            target.left, target.top, target.width, target.height = box.left, box.top, box.width, box.height
        # None: no parent. The stubs type obj_parent as required, NVIDIA's samples pass None
        # (deepstream-ssd-parser) and the binding takes a nullable pointer
        self.ds.nvds_add_obj_meta_to_frame(frame, obj, parent)  # pyright: ignore[reportArgumentType]
        return obj

    # --- tensors ---------------------------------------------------------------------------

    def frame_tensors(self, frame: NvDsFrameMeta, component_id: int) -> dict[str, np.ndarray] | None:
        return self._tensors(frame.frame_user_meta_list, component_id)

    def object_tensors(self, obj: NvDsObjectMeta, component_id: int) -> dict[str, np.ndarray] | None:
        return self._tensors(obj.obj_user_meta_list, component_id)

    def _tensors(self, glist, component_id: int) -> dict[str, np.ndarray] | None:
        kind = self.ds.NvDsMetaType.NVDSINFER_TENSOR_OUTPUT_META
        for user_meta in self._user_metas(glist, kind):
            tensor_meta = self.ds.NvDsInferTensorMeta.cast(user_meta.user_meta_data)
            if tensor_meta.unique_id != component_id:
                continue
            return {layer.layerName: self._layer_array(layer)
                    for layer in (self.ds.get_nvds_LayerInfo(tensor_meta, i)
                                  for i in range(tensor_meta.num_output_layers))}
        return None

    def _layer_array(self, layer: NvDsInferLayerInfo) -> np.ndarray:
        """A copy of one output layer (host memory), shaped by its dims (no batch dimension)."""
        c_type, np_type = self._dtypes.get(layer.dataType, (ctypes.c_float, np.float32))
        dims = layer.inferDims
        shape = tuple(int(d) for d in list(dims.d)[:int(dims.numDims)])
        count = int(dims.numElements)
        address = self.ds.get_ptr(layer.buffer)
        if not address or count <= 0:
            return np.zeros(shape or (0,), dtype=np_type)
        raw = np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(c_type)), shape=(count,))
        array = raw.view(np.float16) if np_type is np.float16 else raw
        return np.array(array, dtype=np.float32 if np_type is np.float16 else np_type).reshape(shape)

    # --- frames in GPU memory -----------------------------------------------------------------

    def surface(self, gst_buffer, frame: NvDsFrameMeta):
        """The frame's pixels as a CuPy array (height, width, 4) over the batch's RGBA surface in
        GPU memory, without a copy (NVIDIA's deepstream-imagedata-multistream-cupy sample).
        Valid only while the probe holds the buffer."""
        import cupy

        dtype, shape, strides, capsule, size = self.ds.get_nvds_buf_surface_gpu(hash(gst_buffer), frame.batch_id)
        memory = cupy.cuda.UnownedMemory(_capsule_address(capsule), size, owner=None)
        return cupy.ndarray(shape=shape, dtype=dtype, memptr=cupy.cuda.MemoryPointer(memory, 0), strides=strides)

    # --- the object encoder --------------------------------------------------------------------

    def encoder(self, gpu_id: int) -> int:
        return self.ds.nvds_obj_enc_create_context(gpu_id)

    def close_encoder(self, context: int) -> None:
        self.ds.nvds_obj_enc_destroy_context(context)

    def encode(self, context: int, gst_buffer, obj: NvDsObjectMeta, frame: NvDsFrameMeta, quality: int = 90) -> None:
        """Queue a JPEG of the object; nvds_obj_enc_finish attaches it as NVDS_CROP_IMAGE_META."""
        args = self.ds.NvDsObjEncUsrArgs()
        args.saveImg = False
        args.attachUsrMeta = True
        args.scaleImg = False
        args.quality = quality
        self.ds.nvds_obj_enc_process(context, args, hash(gst_buffer), obj, frame)

    def finish_encoding(self, context: int) -> None:
        self.ds.nvds_obj_enc_finish(context)

    def jpeg(self, obj: NvDsObjectMeta) -> bytes | None:
        for user_meta in self._user_metas(obj.obj_user_meta_list, self.ds.NvDsMetaType.NVDS_CROP_IMAGE_META):
            out = self.ds.NvDsObjEncOutParams.cast(user_meta.user_meta_data)
            data = out.outBuffer()
            if data is not None and len(data):
                return np.asarray(data, dtype=np.uint8).tobytes()
        return None
