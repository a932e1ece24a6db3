"""Real face photos for checks and tests, taken from a registry package instead of the repository.

The face_recognition 1.3.0 source distribution on PyPI holds tests/test_images/: five photos of
Barack Obama (two of them cropped to a partial face, one also as a 32-bit PNG) and one of Joe
Biden. The insightface 0.7.3 source distribution holds insightface/data/images/t1.jpg: a real
group photo of six people (faces 94-110 px wide in 1280x886), for detection in group photos.
pip fetches the sdist (PyPI is reachable wherever Vigil installs), and the photos are unpacked
into a cache directory once.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vigil.models.errors import SampleMediaError

INDEX_FILE = "photos.json"  # written last: its presence means the cache is complete


@dataclass(frozen=True)
class PhotoSdist:
    name: str
    version: str
    photo_dir: str  # inside the package: the photos are the files directly in it

    @property
    def archive_dir(self) -> PurePosixPath:
        return PurePosixPath(f"{self.name}-{self.version}") / self.photo_dir


FACE_RECOGNITION = PhotoSdist("face_recognition", "1.3.0", "tests/test_images")
INSIGHTFACE = PhotoSdist("insightface", "0.7.3", "insightface/data/images")
GROUP_PHOTO = "t1"  # INSIGHTFACE's group photo
GROUP_PHOTO_FACES = 6


def default_cache_dir(source: PhotoSdist = FACE_RECOGNITION) -> Path:
    from vigil.settings import load_settings

    return load_settings().resolved_state_dir() / "media" / source.name


def face_photos(cache_dir: Path | None = None, source: PhotoSdist = FACE_RECOGNITION) -> dict[str, Path]:
    """Photo name (file stem, e.g. "obama", "biden") -> path, fetched on first use."""
    cache_dir = (cache_dir or default_cache_dir(source)).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:  # concurrent test runs fetch once
        fcntl.flock(lock, fcntl.LOCK_EX)
        photos = _cached(cache_dir)
        if photos is None:
            photos = _fetch(cache_dir, source)
            (cache_dir / INDEX_FILE).write_text(json.dumps(sorted(p.name for p in photos.values())))
        return photos


def _cached(cache_dir: Path) -> dict[str, Path] | None:
    try:
        names = json.loads((cache_dir / INDEX_FILE).read_text())
    except (OSError, ValueError):
        return None
    paths = [cache_dir / name for name in names]
    return {p.stem: p for p in paths} if paths and all(p.is_file() for p in paths) else None


def _fetch(cache_dir: Path, source: PhotoSdist) -> dict[str, Path]:
    name, version = source.name, source.version
    with tempfile.TemporaryDirectory(prefix="vigil-sdist-") as tmp:
        command = [  # the package as an sdist; its build requirements (pip reads its metadata) as wheels
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name,
            f"{name}=={version}", "-d", tmp, "--quiet", "--disable-pip-version-check",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", "") or ""
            raise SampleMediaError(
                f"could not download the {name} {version} sdist from PyPI: {output.strip()[-400:] or exc}"
            ) from exc
        sdists = list(Path(tmp).glob(f"{name}-{version}.tar.gz"))
        if not sdists:
            raise SampleMediaError(f"pip downloaded no {name}-{version}.tar.gz into {tmp}")
        return _extract_photos(sdists[0], cache_dir, source.archive_dir)


def _extract_photos(sdist: Path, cache_dir: Path, photo_dir: PurePosixPath) -> dict[str, Path]:
    photos = {}
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            path = PurePosixPath(member.name)
            if not member.isfile() or path.parent != photo_dir:
                continue
            target = cache_dir / path.name  # the bare file name: nothing in the archive picks the location
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(archive.extractfile(member).read())
            partial.replace(target)
            photos[target.stem] = target
    if not photos:
        raise SampleMediaError(f"{sdist.name} has no files under {photo_dir}")
    return photos
