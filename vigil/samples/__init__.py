"""Sample media for the pipeline and its tests: recorded video built at set-up time from real
photos and footage that ship in registry packages, and a real RTSP server that streams it.

    videos = load_sample_videos()            # built into <state_dir>/media on first use
    walk = videos["people_walk"]             # ground truth: walk.appearances, walk.enrol["obama"]
    with RtspTestServer({"walk": walk.path}) as server:
        url = server.url("walk")             # rtsp://127.0.0.1:PORT/walk, looping
"""

from vigil.samples.rtsp import RtspServerError, RtspTestServer
from vigil.samples.scene import WATCHLIST_NAME
from vigil.samples.videos import (
    VIDEO_NAMES,
    Appearance,
    FaceBox,
    SampleVideo,
    build_sample_videos,
    default_cache_dir,
    encode_h264,
    load_sample_videos,
    sample_video,
)

__all__ = [
    "VIDEO_NAMES", "WATCHLIST_NAME", "Appearance", "FaceBox", "RtspServerError", "RtspTestServer", "SampleVideo",
    "build_sample_videos", "default_cache_dir", "encode_h264", "load_sample_videos", "sample_video",
]
