"""Recorded test video built at set-up time from real media that ship in registry packages.

- people_walk.mp4: real people (photos from the face_recognition sdist on PyPI and scikit-image's
  astronaut) walking through a drawn corridor, with a ground-truth manifest of every face.
- vtest.avi: real pedestrian footage from Debian's opencv-doc package (no ground truth).
- people_street.mp4: vtest.avi transcoded to H.264, for RTSP and H.264 decode paths.

Everything lands in a cache directory (default <state_dir>/media); a manifest JSON sits beside
each video, and `videos.json` is written last, so its presence means the cache is complete.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vigil.logs import get_logger
from vigil.models.errors import SampleMediaError
from vigil.models.samples import face_photos

log = get_logger("vigil.samples")

# Bump when the script, the encoding or the manifest format changes: caches rebuild themselves.
BUILD_VERSION = 1
INDEX_FILE = "videos.json"
PHOTO_DIR = "face_recognition"  # where vigil.models.samples caches the sdist photos
VIDEO_NAMES = ("people_walk", "vtest", "people_street")
DEBIAN_PACKAGE = "opencv-doc"
VTEST_MEMBER = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
GOP_SECONDS = 1  # a keyframe a second: RTSP clients joining mid-stream start decoding quickly

Progress = Callable[[str, int, int], None]  # (step, done, total)


@dataclass(frozen=True)
class FaceBox:
    """Where one appearance's face is in one frame (YuNet's box convention)."""

    frame: int
    x: float
    y: float
    w: float
    h: float
    visible: float  # fraction of the box inside the frame (1.0: the whole face is in view)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)


@dataclass(frozen=True)
class Appearance:
    """One walk of one person through the video: a tracker should give it one track."""

    index: int
    name: str  # identity: "obama", "biden", "astronaut"
    photo: Path  # the real photo the cut-out was taken from
    first_frame: int
    last_frame: int
    faces: tuple[FaceBox, ...]  # one per frame from first_frame to last_frame

    def face_at(self, frame: int) -> FaceBox | None:
        if not self.first_frame <= frame <= self.last_frame:
            return None
        return self.faces[frame - self.first_frame]

    def in_view(self) -> list[FaceBox]:
        """The frames in which the whole face is inside the frame."""
        return [f for f in self.faces if f.visible >= 1.0]


@dataclass(frozen=True)
class SampleVideo:
    name: str
    path: Path
    manifest_path: Path
    width: int
    height: int
    fps: float
    frames: int
    codec: str
    source: str  # where the footage comes from, in words
    appearances: tuple[Appearance, ...] = ()  # empty: no ground truth (real footage)
    # the photo to enrol per watchlist identity (it appears in no video)
    enrol: dict[str, Path] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def appearances_at(self, frame: int) -> list[tuple[Appearance, FaceBox]]:
        return [(a, box) for a in self.appearances if (box := a.face_at(frame)) is not None]

    def identities(self) -> set[str]:
        return {a.name for a in self.appearances}


def default_cache_dir() -> Path:
    from vigil.settings import load_settings

    return load_settings().resolved_state_dir() / "media"


def load_sample_videos(cache_dir: Path | None = None, progress: Progress | None = None) -> dict[str, SampleVideo]:
    """Every sample video by name (people_walk, vtest, people_street); built on first use."""
    return build_sample_videos(cache_dir, progress=progress)


def sample_video(name: str, cache_dir: Path | None = None) -> SampleVideo:
    videos = load_sample_videos(cache_dir)
    if name not in videos:
        raise KeyError(f"no sample video {name!r}; known: {', '.join(sorted(videos))}")
    return videos[name]


def build_sample_videos(
    cache_dir: Path | None = None, *, force: bool = False, progress: Progress | None = None,
) -> dict[str, SampleVideo]:
    """Build what is missing (everything with force=True) and return every sample video.
    Idempotent; concurrent callers (parallel test runs) build once."""
    cache_dir = (cache_dir or default_cache_dir()).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".videos.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and (videos := _cached(cache_dir)) is not None:
            return videos
        (cache_dir / INDEX_FILE).unlink(missing_ok=True)
        started = time.monotonic()
        manifests = {
            "people_walk": _build_people_walk(cache_dir, progress),
            "vtest": _fetch_vtest(cache_dir, progress),
        }
        manifests["people_street"] = _transcode(cache_dir, manifests["vtest"], "people_street", progress)
        index = {"build_version": BUILD_VERSION, "videos": {n: m["manifest"] for n, m in manifests.items()}}
        _write_json(cache_dir / INDEX_FILE, index)
        log.info("sample videos built", cache_dir=str(cache_dir), seconds=round(time.monotonic() - started, 1))
        videos = _cached(cache_dir)
        if videos is None:
            raise SampleMediaError(f"sample videos in {cache_dir} are incomplete right after building them")
        return videos


# --- the cache --------------------------------------------------------------------------------

def _cached(cache_dir: Path) -> dict[str, SampleVideo] | None:
    try:
        index = json.loads((cache_dir / INDEX_FILE).read_text())
        if index.get("build_version") != BUILD_VERSION:
            return None
        videos = {name: _load_manifest(cache_dir, cache_dir / manifest) for name, manifest in index["videos"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = [v.path for v in videos.values()] + [a.photo for v in videos.values() for a in v.appearances]
    return videos if all(p.is_file() for p in files) else None


def _load_manifest(cache_dir: Path, path: Path) -> SampleVideo:
    data = json.loads(path.read_text())
    appearances = tuple(
        Appearance(
            index=a["index"], name=a["name"], photo=cache_dir / a["photo"],
            first_frame=a["first_frame"], last_frame=a["last_frame"],
            faces=tuple(FaceBox(frame, *box, visible) for frame, box, visible in
                        ((f["frame"], f["box"], f["visible"]) for f in a["faces"])),
        )
        for a in data.get("appearances", [])
    )
    return SampleVideo(
        name=data["name"], path=cache_dir / data["video"], manifest_path=path,
        width=data["width"], height=data["height"], fps=data["fps"], frames=data["frames"],
        codec=data["codec"], source=data["source"], appearances=appearances,
        enrol={name: cache_dir / photo for name, photo in data.get("enrol", {}).items()},
    )


def _write_json(path: Path, data: dict) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(data, indent=1))
    partial.replace(path)


def _relative(path: Path, cache_dir: Path) -> str:
    return str(path.resolve().relative_to(cache_dir))


# --- people_walk ------------------------------------------------------------------------------

def _build_people_walk(cache_dir: Path, progress: Progress | None) -> dict:
    from vigil.samples import scene

    photo_paths = face_photos(cache_dir / PHOTO_DIR)
    astronaut = cache_dir / "scikit-image" / "astronaut.png"
    astronaut.parent.mkdir(exist_ok=True)
    image = scene.astronaut_bgr()
    import cv2

    cv2.imwrite(str(astronaut), image)  # kept beside the video: tests embed the source photo
    sources = {stem: photo_paths[stem] for stem in ("obama2", "obama3", "biden")}
    sources["astronaut"] = astronaut
    photos = {stem: scene.read_photo(path) for stem, path in sources.items()}

    started = time.monotonic()
    truth, frames = scene.script_frames(photos, scene.load_textures())
    path = cache_dir / "people_walk.mp4"
    encode_h264(frames, path, scene.WIDTH, scene.HEIGHT, scene.FPS, scene.FRAMES, "people_walk", progress)
    appearances = [
        {
            "index": i, "name": walk.name, "photo": _relative(sources[walk.photo], cache_dir),
            "first_frame": placed[0].frame, "last_frame": placed[-1].frame,
            "direction": "left_to_right" if walk.left_to_right else "right_to_left",
            "face_height": walk.face_height,
            "faces": [{"frame": p.frame, "box": [round(v, 2) for v in p.box], "visible": p.visible} for p in placed],
        }
        for i, (walk, placed) in enumerate(truth)
    ]
    manifest = {
        "format": BUILD_VERSION, "name": "people_walk", "video": path.name, "codec": "h264",
        "width": scene.WIDTH, "height": scene.HEIGHT, "fps": scene.FPS, "frames": scene.FRAMES,
        "source": "real photos (face_recognition 1.3.0 sdist: obama2/obama3/biden; scikit-image astronaut) "
                  "as head-and-shoulders cut-outs walking through a drawn corridor",
        "box_format": "x, y, w, h in pixels (YuNet convention); visible = fraction inside the frame",
        "enrol": {scene.WATCHLIST_NAME: _relative(photo_paths[scene.WATCHLIST_PHOTO], cache_dir)},
        "appearances": appearances,
    }
    _write_json(cache_dir / "people_walk.json", manifest)
    log.info("video built", video="people_walk", frames=scene.FRAMES, appearances=len(appearances),
             seconds=round(time.monotonic() - started, 1))
    return {"manifest": "people_walk.json"}


def encode_h264(frames: Iterable[np.ndarray], path: Path, width: int, height: int, fps: int, total: int = 0,
                step: str = "encode", progress: Progress | None = None) -> int:
    """Write BGR frames as H.264 (yuv420p, one slice, no B-frames, a keyframe per GOP_SECONDS)
    in MP4, what cameras stream; returns the frame count. Also for tests that need short clips."""
    partial = path.with_name(path.stem + ".part.mp4")
    count = 0
    with av.open(str(partial), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # one slice per picture: PyAV's default slice threading splits pictures into slices,
        # and rtph264pay (config-interval=-1) repeats SPS/PPS before each IDR slice, which
        # RTSP clients then take for two pictures, the first missing its lower half
        stream.codec_context.thread_type = "FRAME"
        gop = max(1, round(fps * GOP_SECONDS))
        stream.options = {
            "crf": "20", "preset": "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
        }
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
            if progress is not None and (count % 10 == 0 or count == total):
                progress(step, count, total)
        for packet in stream.encode():
            container.mux(packet)
    partial.replace(path)
    return count


# --- vtest.avi and its H.264 copy -------------------------------------------------------------

def _fetch_vtest(cache_dir: Path, progress: Progress | None) -> dict:
    path = cache_dir / "vtest.avi"
    if not path.is_file():
        if progress is not None:
            progress("vtest (apt-get download opencv-doc)", 0, 1)
        _download_vtest(path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height, codec = stream.width, stream.height, stream.codec_context.name
        fps = float(stream.average_rate or stream.guessed_rate)
        frames = sum(1 for _ in container.decode(stream))  # the header's count is not to be trusted
    manifest = {
        "format": BUILD_VERSION, "name": "vtest", "video": path.name, "codec": codec,
        "width": width, "height": height, "fps": fps, "frames": frames,
        "source": f"real pedestrian footage, vtest.avi of Debian's {DEBIAN_PACKAGE} package",
        "appearances": [],
    }
    _write_json(cache_dir / "vtest.json", manifest)
    if progress is not None:
        progress("vtest (apt-get download opencv-doc)", 1, 1)
    return {"manifest": "vtest.json", "path": path, **manifest}


def _download_vtest(target: Path) -> None:
    """apt-get download (no install, no root needed for the download itself) + dpkg-deb."""
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise SampleMediaError(
            f"fetching vtest.avi needs Debian's {' and '.join(missing)} (it comes from the {DEBIAN_PACKAGE} "
            f"package). On another system copy OpenCV's samples/data/vtest.avi to {target} and run "
            "`vigil samples build` again.")
    with tempfile.TemporaryDirectory(prefix="vigil-opencv-doc-") as tmp:
        os.chmod(tmp, 0o755)
        result = _apt_download(tmp)
        if result.returncode != 0:
            # a fresh container has no package lists: fetch them once, then retry
            log.info("apt-get download failed, updating package lists", stderr=result.stderr.strip()[-200:])
            update = _run(["apt-get", "update"], tmp, timeout=300)
            if update.returncode != 0:
                raise SampleMediaError(
                    f"`apt-get download {DEBIAN_PACKAGE}` failed ({result.stderr.strip()[-200:]}) and "
                    f"`apt-get update` failed too ({update.stderr.strip()[-200:]}); run `sudo apt-get update` "
                    "and `vigil samples build` again")
            result = _apt_download(tmp)
            if result.returncode != 0:
                raise SampleMediaError(
                    f"`apt-get download {DEBIAN_PACKAGE}` failed: {result.stderr.strip()[-400:]}")
        debs = sorted(Path(tmp).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise SampleMediaError(f"apt-get download {DEBIAN_PACKAGE} wrote no .deb into {tmp}")
        _extract_member(debs[0], VTEST_MEMBER, target)
    log.info("vtest.avi fetched", package=debs[0].name, bytes=target.stat().st_size)


def _apt_download(cwd: str) -> subprocess.CompletedProcess:
    return _run(["apt-get", "download", DEBIAN_PACKAGE], cwd, timeout=600)


def _run(command: Sequence[str], cwd: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SampleMediaError(f"`{' '.join(command)}` took over {timeout:.0f}s; check the network") from exc


def _extract_member(deb: Path, member: str, target: Path) -> None:
    """One file out of a .deb's data archive, streamed (the package is ~100 MB of docs)."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as proc:
        found = False
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as archive:
            for entry in archive:
                if entry.isfile() and entry.name.lstrip("./") == member:
                    partial = target.with_name(target.name + ".part")
                    with archive.extractfile(entry) as src, open(partial, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    partial.replace(target)
                    found = True
                    break
        proc.stdout.close()
        proc.kill()  # stop once found: the rest of the archive is not needed
    if not found:
        raise SampleMediaError(f"{deb.name} has no {member}: the package layout changed; update VTEST_MEMBER")


def _transcode(cache_dir: Path, source: dict, name: str, progress: Progress | None) -> dict:
    path = cache_dir / f"{name}.mp4"
    fps = round(source["fps"])

    def frames():
        with av.open(str(source["path"])) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="bgr24")

    started = time.monotonic()
    count = encode_h264(frames(), path, source["width"], source["height"], fps, source["frames"], name, progress)
    manifest = {
        "format": BUILD_VERSION, "name": name, "video": path.name, "codec": "h264",
        "width": source["width"], "height": source["height"], "fps": fps, "frames": count,
        "source": f"{source['source']}, transcoded to H.264", "appearances": [],
    }
    _write_json(cache_dir / f"{name}.json", manifest)
    log.info("video built", video=name, frames=count, seconds=round(time.monotonic() - started, 1))
    return {"manifest": f"{name}.json"}
