"""pipeline/deepstream type-checked against an independent description of pyds: the third-party
`pyds-stubs` 1.2.2 (PyPI; generated from the bindings with pybind11-stubgen), with basedpyright
(a pyright build that ships inside its wheel, so it runs offline). meta.py hands the checker the
real module (`self.ds` is `pyds` to it), so every pyds access of the backend, and the attributes
stages.py reads off what meta.py returns, are checked against the stubs; pyds_api.json (the list
the pyds-shaped fakes follow) is checked against them too.

pyds-stubs declares Python 3.12 only (its stubs use 3.12 syntax) and Vigil runs on 3.11, so pip
will not install it here: the stubs are taken from the installed package where there is one,
else from the wheel, fetched once with `pip download` into .vigil/downloads (as the sample media
are). The disagreements between the stubs, our code and NVIDIA's bindings are listed in
pipeline/deepstream/README.md; the ones the stubs get wrong are the KNOWN_* filters below.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
API = json.loads((ROOT / "pipeline/deepstream/pyds_api.json").read_text())
STUBS_VERSION = "1.2.2"
STUBS_WHEEL = f"pyds_stubs-{STUBS_VERSION}-py3-none-any.whl"
STUBS_SHA256 = "e07b708545bf363b3be56f63d201d59272e33fd07e29b8e4eb1f0e965de0d86c"
CACHE = ROOT / ".vigil" / "downloads" / f"pyds-stubs-{STUBS_VERSION}"
CHECKER = Path(sys.executable).with_name("basedpyright")
# vigil.pipeline, .storage and .control live in top-level folders (pyproject's package-dir); the
# editable install maps them with an import hook no type checker follows, so the check runs on a
# tree of links laid out as the installed package
MAPPED = {"pipeline": "pipeline", "storage": "storage", "control": "control"}

# Modules the checker cannot see here: GStreamer's introspection (Debian's, outside the venv) and
# CuPy (GPU machines only).
NOT_INSTALLED = ('Import "gi"', 'Import "gi.repository"', 'Import "cupy"')
# The stubs declare each class's `cast` as an overloaded method whose `self` is the data
# (capsule | int), which is how pybind11 binds it (`.def("cast", [](void *data) ...)`), but pyright
# cannot bind such a method when it is called on the class, `pyds.NvDsFrameMeta.cast(data)`: the
# call NVIDIA's bindings document and every sample makes.
KNOWN_CAST = 'Cannot access attribute "cast" for class "type['


def installed_stubs() -> Path | None:
    for folder in [*site.getsitepackages(), site.getusersitepackages()]:
        candidate = Path(folder) / "pyds-stubs"
        if (candidate / "__init__.pyi").is_file():
            return candidate
    return None


def fetched_stubs() -> Path:
    """The stubs of the wheel, downloaded and unpacked once (pip checks nothing for us here:
    the wheel's digest is pinned)."""
    target = CACHE / "pyds"
    if (target / "__init__.pyi").is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "--python-version", "3.12", f"pyds-stubs=={STUBS_VERSION}", "-d", str(CACHE)],
                          capture_output=True, text=True, timeout=300)
    wheel = CACHE / STUBS_WHEEL
    if done.returncode != 0 or not wheel.is_file():
        pytest.fail(f"could not fetch pyds-stubs {STUBS_VERSION} ({done.stderr.strip()[-300:]}); with network "
                    f"access run this test once, or place {STUBS_WHEEL} in {CACHE}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert digest == STUBS_SHA256, f"{wheel} is not the pyds-stubs {STUBS_VERSION} wheel (sha256 {digest})"
    partial = CACHE / "pyds.part"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith("pyds-stubs/"):
                (partial / Path(member).name).parent.mkdir(parents=True, exist_ok=True)
                (partial / Path(member).name).write_bytes(archive.read(member))
    partial.rename(target)
    return target


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """basedpyright's diagnostics on pipeline/deepstream, and on two files of our own that must
    fail (so the check cannot pass by checking nothing), with the stubs as pyds."""
    work = tmp_path_factory.mktemp("pyds_types")
    stubs = work / "stubs"
    stubs.mkdir()
    shutil.copytree(installed_stubs() or fetched_stubs(), stubs / "pyds")
    package = work / "src" / "vigil"
    package.mkdir(parents=True)
    for entry in (ROOT / "vigil").iterdir():
        (package / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (package / name).symlink_to(ROOT / folder)
    probes = work / "src" / "probes"
    probes.mkdir()
    # every name of pyds_api.json, as the fakes offer it
    lines = ["import pyds", ""]
    lines += [f"pyds.{name}" for name in API["functions"]]
    lines += [f"pyds.{cls}.{member}" if member != "cast" else f"pyds.{cls}.cast(0)"
              for cls, members in API["classes"].items() for member in members]
    (probes / "api_names.py").write_text("\n".join(lines) + "\n")
    (probes / "must_fail.py").write_text(
        "from vigil.pipeline.deepstream.meta import Meta\n\n\n"
        "def wrong(meta: Meta, frame) -> None:\n"
        "    meta.ds.nvds_no_such_function()\n"
        "    for f in meta.frames(frame):\n"
        "        f.frame_number  # NvDsFrameMeta has frame_num\n")
    (work / "pyrightconfig.json").write_text(json.dumps({
        "include": ["src/vigil/pipeline/deepstream", "src/probes"], "extraPaths": ["src"], "stubPath": "stubs",
        "pythonVersion": "3.11", "typeCheckingMode": "standard", "reportMissingModuleSource": False}))
    done = subprocess.run([str(CHECKER), "-p", str(work / "pyrightconfig.json"), "--pythonpath", sys.executable,
                           "--outputjson"], capture_output=True, text=True, timeout=600, cwd=work,
                          env={**os.environ, "NODE_OPTIONS": "--max-old-space-size=2048"})
    report = json.loads(done.stdout)
    assert report["summary"]["filesAnalyzed"] >= 10, report["summary"]
    by_file: dict[str, list[str]] = {}
    for diagnostic in report["generalDiagnostics"]:
        where = Path(diagnostic["file"]).relative_to(work / "src")
        line = diagnostic["range"]["start"]["line"] + 1
        by_file.setdefault(str(where), []).append(f"{where}:{line}: {diagnostic['message'].splitlines()[0]}")
    return by_file


def known(message: str) -> bool:
    return any(m in message for m in NOT_INSTALLED) or KNOWN_CAST in message


def test_the_deepstream_package_agrees_with_the_stubs(checked):
    found = [m for f, messages in checked.items() if f.startswith("vigil/") for m in messages if not known(m)]
    assert not found, "\n".join(found)


def test_the_check_sees_pyds_through_meta(checked):
    messages = "\n".join(checked.get("probes/must_fail.py", []))
    assert '"nvds_no_such_function" is not a known attribute of module "pyds"' in messages
    assert 'Cannot access attribute "frame_number" for class "NvDsFrameMeta"' in messages


def test_the_names_the_fakes_offer_are_in_the_stubs(checked):
    """pyds_api.json lists what tests/deepstream/fakes.py exposes: each name exists in the stubs."""
    assert [m for m in checked.get("probes/api_names.py", []) if KNOWN_CAST not in m] == []
