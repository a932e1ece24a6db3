"""Generate the Python code of the public gRPC API (proto/vigil/v1/*.proto) into vigil/api/v1/.

The generated modules are imported as::

    from vigil.api.v1 import camera_pb2, camera_pb2_grpc

protoc (grpcio-tools) runs with ``-I proto``, so the descriptors keep their canonical proto
paths (``vigil/v1/camera.proto``) and package (``vigil.v1``): server reflection, grpcurl and
other languages see the same names. Only the Python import lines are rewritten from
``from vigil.v1 import x_pb2`` to ``from vigil.api.v1 import x_pb2`` (and the ``__module__`` of
the generated classes accordingly), so no ``sys.path`` manipulation is needed.

Outputs (all generated, ignored by git through vigil/api/.gitignore):

- ``vigil/api/__init__.py``, ``vigil/api/v1/__init__.py`` (with ``SERVICE_NAMES`` and
  ``PROTO_MODULES``, for server reflection and health registration),
- ``vigil/api/v1/<name>_pb2.py``, ``<name>_pb2.pyi``, ``<name>_pb2_grpc.py`` per .proto file,
- ``vigil/api/descriptor_set.binpb``: a FileDescriptorSet of every file with its imports and
  source info (comments), for tools that need descriptors without importing Python code,
- ``vigil/api/.stamp``: the hash of the inputs the code was generated from.

``build()`` regenerates only when that hash changed (the .proto files, the grpcio-tools and
protobuf versions, or this generator). Concurrent builds (test workers) serialise on a file
lock, and each file is replaced atomically. Generation is a build step only: a server calls
``ensure_current()``, which refuses to start on code older than the .proto files.

Run ``python -m vigil.api_build`` (``--force`` to regenerate, ``--check`` to only report).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

# Bump when the output layout or the rewriting below changes, so existing builds are redone.
GENERATOR_VERSION = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent
# The proto tree; VIGIL_PROTO_DIR overrides it (e.g. when vigil is installed outside the repo).
PROTO_ROOT = Path(os.environ.get("VIGIL_PROTO_DIR", REPO_ROOT / "proto"))
PROTO_PACKAGE = "vigil.v1"  # the proto package, and the Python package protoc imports from
PYTHON_PACKAGE = "vigil.api.v1"  # where the modules are importable instead
API_DIR = Path(__file__).resolve().parent / "api"
OUT_DIR = API_DIR / "v1"
DESCRIPTOR_SET = API_DIR / "descriptor_set.binpb"
STAMP = API_DIR / ".stamp"
LOCK = API_DIR / ".build.lock"

_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

_API_INIT = '''"""Generated Python code of Vigil's public gRPC API. Built by `python -m vigil.api_build`;
do not edit. Import the modules from vigil.api.v1, e.g. `from vigil.api.v1 import camera_pb2`."""
'''


BUILD_COMMAND = "python -m vigil.api_build"  # (make install runs it)


class ApiBuildError(RuntimeError):
    """protoc failed or produced unexpected output."""


class ApiOutOfDate(RuntimeError):
    """The generated code is missing or older than the .proto files: run BUILD_COMMAND."""


def proto_files(root: Path | None = None) -> list[Path]:
    """The .proto files of the API (package vigil.v1), relative to the proto root, sorted."""
    root = root or PROTO_ROOT
    package_dir = root.joinpath(*PROTO_PACKAGE.split("."))
    return sorted(p.relative_to(root) for p in package_dir.glob("*.proto"))


def _tool_versions() -> str:
    versions = []
    for dist in ("grpcio-tools", "protobuf"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=missing")
    return ";".join(versions)


def source_hash(root: Path | None = None) -> str:
    """SHA-256 over the .proto files (paths and contents), tool versions and generator version."""
    root = root or PROTO_ROOT
    digest = hashlib.sha256()
    digest.update(f"generator={GENERATOR_VERSION};{_tool_versions()}\n".encode())
    for rel in proto_files(root):
        data = (root / rel).read_bytes()
        digest.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def expected_outputs(root: Path | None = None) -> list[Path]:
    """Every file a complete build leaves behind (besides the stamp)."""
    outputs = [API_DIR / "__init__.py", OUT_DIR / "__init__.py", DESCRIPTOR_SET]
    for rel in proto_files(root):
        outputs += [OUT_DIR / f"{rel.stem}{suffix}" for suffix in _SUFFIXES]
    return outputs


def is_current(root: Path | None = None) -> bool:
    """True when the generated code exists and matches the current .proto files and tools.

    Without a proto tree (vigil installed from a wheel), generated code that exists counts as current.
    """
    root = root or PROTO_ROOT
    if not proto_files(root):
        return (OUT_DIR / "__init__.py").is_file() and DESCRIPTOR_SET.is_file()
    try:
        stamp = STAMP.read_text().strip()
    except OSError:
        return False
    return stamp == source_hash(root) and all(p.is_file() for p in expected_outputs(root))


def ensure_current(root: Path | None = None) -> None:
    """Raise ApiOutOfDate, naming the command to run, unless the generated code is current."""
    if not is_current(root):
        raise ApiOutOfDate(
            f"the generated gRPC code in {OUT_DIR} is missing or older than the .proto files under "
            f"{root or PROTO_ROOT}: run `{BUILD_COMMAND}` (or `make install`) and start again")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    API_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _well_known_include() -> Path:
    try:
        import grpc_tools
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ApiBuildError(
            "grpcio-tools is required to generate the API code: pip install grpcio-tools==1.81.1"
        ) from exc
    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    if not (include / "google" / "protobuf" / "timestamp.proto").is_file():
        raise ApiBuildError(f"grpcio-tools ships no well-known types under {include}")
    return include


def _run_protoc(root: Path, files: list[Path], out: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{_well_known_include()}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--descriptor_set_out={out / DESCRIPTOR_SET.name}",
        "--include_imports",
        "--include_source_info",
        *(f.as_posix() for f in files),
    ]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ApiBuildError(f"protoc failed (exit {proc.returncode}):\n{proc.stderr or proc.stdout}")


_IMPORT_RE = re.compile(rf"^(from|import) {re.escape(PROTO_PACKAGE)}(?=[ .])", re.MULTILINE)
_MODULE_NAME_RE = re.compile(rf"'{re.escape(PROTO_PACKAGE)}\.(\w+_pb2)'")


def _rewrite(text: str) -> str:
    """Point the generated imports (and class __module__ names) at vigil.api.v1."""
    text = _IMPORT_RE.sub(lambda m: f"{m.group(1)} {PYTHON_PACKAGE}", text)
    return _MODULE_NAME_RE.sub(lambda m: f"'{PYTHON_PACKAGE}.{m.group(1)}'", text)


def _service_names(descriptor_set: Path) -> list[str]:
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    return sorted(
        f"{f.package}.{s.name}" for f in fds.file if f.package == PROTO_PACKAGE for s in f.service
    )


def _v1_init(modules: list[str], services: list[str]) -> str:
    lines = [
        '"""Generated code of the vigil.v1 gRPC API (proto/vigil/v1). Built by',
        "`python -m vigil.api_build`; do not edit.",
        "",
        "Modules: " + ", ".join(f"{m}_pb2" for m in modules) + ' (plus *_pb2_grpc)."""',
        "",
        "# Fully-qualified names of the API's services (for reflection and health registration).",
        "SERVICE_NAMES: tuple[str, ...] = (",
        *(f"    {s!r}," for s in services),
        ")",
        "",
        "# Names of the generated message modules, e.g. 'camera' for camera_pb2 / camera_pb2_grpc.",
        "PROTO_MODULES: tuple[str, ...] = (",
        *(f"    {m!r}," for m in modules),
        ")",
        "",
    ]
    return "\n".join(lines)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def build(force: bool = False, root: Path | None = None) -> list[Path]:
    """Generate the API code unless it is current; returns the files written ([] if none).

    Raises ApiBuildError when protoc fails; the previous generated code is then left as it was.
    """
    root = root or PROTO_ROOT
    files = proto_files(root)
    if not files:
        raise ApiBuildError(f"no .proto files under {root.joinpath(*PROTO_PACKAGE.split('.'))}")
    if not force and is_current(root):
        return []
    with _locked():
        if not force and is_current(root):  # another process built it while we waited
            return []
        digest = source_hash(root)
        with tempfile.TemporaryDirectory(dir=API_DIR, prefix=".build-") as tmp_name:
            tmp = Path(tmp_name)
            _run_protoc(root, files, tmp)
            generated = tmp.joinpath(*PROTO_PACKAGE.split("."))
            modules = [rel.stem for rel in files]
            outputs: dict[Path, bytes] = {}
            for module in modules:
                for suffix in _SUFFIXES:
                    src = generated / f"{module}{suffix}"
                    if not src.is_file():
                        raise ApiBuildError(f"protoc did not produce {src.name}")
                    outputs[OUT_DIR / src.name] = _rewrite(src.read_text()).encode()
            descriptor_set = tmp / DESCRIPTOR_SET.name
            outputs[DESCRIPTOR_SET] = descriptor_set.read_bytes()
            outputs[API_DIR / "__init__.py"] = _API_INIT.encode()
            outputs[OUT_DIR / "__init__.py"] = _v1_init(modules, _service_names(descriptor_set)).encode()

        OUT_DIR.mkdir(parents=True, exist_ok=True)
        written = []
        for path, data in outputs.items():
            _write_atomic(path, data)
            written.append(path)
        # Remove modules of .proto files that no longer exist.
        for stale in OUT_DIR.iterdir():
            if stale.is_file() and stale not in outputs and stale.name.endswith(_SUFFIXES):
                stale.unlink()
        shutil.rmtree(OUT_DIR / "__pycache__", ignore_errors=True)
        _write_atomic(STAMP, (digest + "\n").encode())
        return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=BUILD_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="regenerate even if the code is current")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if the code is not current")
    args = parser.parse_args(argv)
    if args.check:
        current = is_current()
        print(f"vigil.api is {'current' if current else 'out of date'} ({OUT_DIR})")
        return 0 if current else 1
    try:
        written = build(force=args.force)
    except ApiBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if written:
        print(f"generated {len(written)} files into {API_DIR}")
    else:
        print(f"vigil.api is current ({OUT_DIR})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
