"""Decoding the 1080p H.264 clip in a loop for a fixed time: on the CPU to BGR arrays (PyAV as the
portable backend does, or OpenCV where PyAV is absent, as on the GPU machines), on NVDEC to NV12
surfaces in GPU memory (PyNvVideoCodec, one decoder per session, sessions in threads: its decode
calls release the GIL). DeepStream's own decoder wheel (nvidia-deepstream-videodecode-cu13) is
not measured: it needs nvidia-npp (154 MB), which does not fit the 64 MiB carry."""

from __future__ import annotations

import threading
import time
from pathlib import Path

DEEPSTREAM_DECODER = ("not measured: nvidia-deepstream-videodecode-cu13 needs nvidia-npp (154 MB), "
                      "more than the 64 MiB carry holds")


def cpu_decode(clip: Path, seconds: float) -> dict:
    """Frames/s of one decoder using every core (codec threads), frames converted to BGR."""
    try:
        import av  # noqa: F401
        decoder, frames = "pyav", _pyav_frames
    except ImportError:
        decoder, frames = "opencv", _cv2_frames
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in frames(clip):
            count += 1
            if time.perf_counter() - started >= seconds:
                break
    elapsed = time.perf_counter() - started
    return {"decoder": decoder, "frames": count, "seconds": round(elapsed, 3), "fps": count / elapsed}


def _pyav_frames(clip: Path):
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="bgr24")


def _cv2_frames(clip: Path):
    import cv2

    capture = cv2.VideoCapture(str(clip))
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


def nvdec_decode(clip: Path, seconds: float, sessions: int, gpu_id: int = 0) -> dict:
    """Frames/s of `sessions` concurrent NVDEC decoders, frames left in GPU memory (NV12)."""
    import PyNvVideoCodec as nvc  # noqa: N813 - NVIDIA's samples' name for it

    counts, errors, dlpack = [0] * sessions, [], {}
    stop = threading.Event()

    def run(index: int) -> None:
        try:
            _session(nvc, clip, gpu_id, stop, counts, index, dlpack if index == 0 else None)
        except Exception as exc:  # noqa: BLE001 - reported by the caller; the other measurements still run
            errors.append(f"{type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(sessions)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=30)  # a decode call that never returns must not hang the whole report
    elapsed = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        errors.append("a decoder did not stop within 30 s of the end of the measurement")
    if errors:
        raise RuntimeError(errors[0])
    return {"decoder": "pynvvideocodec", "sessions": sessions, "frames": sum(counts), "seconds": round(elapsed, 3),
            "fps": sum(counts) / elapsed, "dlpack": dlpack, "deepstream_decoder": DEEPSTREAM_DECODER}


def _session(nvc, clip: Path, gpu_id: int, stop: threading.Event, counts: list[int], index: int,
             dlpack: dict | None) -> None:
    """One decoder on the clip in a loop: a new demuxer per pass, one decoder (its set-up is slow)."""
    decoder = None
    while not stop.is_set():
        demuxer = nvc.CreateDemuxer(filename=str(clip))
        if decoder is None:
            decoder = nvc.CreateDecoder(gpuid=gpu_id, codec=demuxer.GetNvCodecId(), usedevicememory=True)
        for packet in demuxer:
            for frame in decoder.Decode(packet):
                counts[index] += 1
                if dlpack is not None and not dlpack:
                    dlpack.update(_dlpack_view(frame))
            if stop.is_set():
                return


def _dlpack_view(frame) -> dict:
    """Whether a decoded surface reaches PyTorch without a copy (DLPack), and its shape."""
    try:
        import torch

        tensor = torch.from_dlpack(frame)
        return {"ok": True, "shape": list(tensor.shape), "dtype": str(tensor.dtype), "device": str(tensor.device)}
    except Exception as exc:  # noqa: BLE001 - whatever the reason, the answer is 'no zero-copy view'
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
