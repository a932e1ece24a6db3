"""The public API definition: buf lint (STANDARD + COMMENTS) passes and the generated Python
code is current with the .proto files."""

import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.api_build import build, is_current

PROTO = Path(__file__).resolve().parents[1] / "proto"


@pytest.fixture(scope="module")
def buf() -> Path:
    binary = PROTO / "node_modules" / ".bin" / "buf"
    if not binary.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install buf (the protobuf linter) from the npm registry"
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=PROTO, check=True, capture_output=True,
                       timeout=300)
    return binary


def test_buf_lint_passes(buf):
    result = subprocess.run([str(buf), "lint"], cwd=PROTO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_buf_lint_catches_a_missing_comment(buf, tmp_path):
    shutil.copytree(PROTO / "vigil", tmp_path / "vigil")
    shutil.copy(PROTO / "buf.yaml", tmp_path / "buf.yaml")
    (tmp_path / "vigil" / "v1" / "extra.proto").write_text(
        'syntax = "proto3";\npackage vigil.v1;\nmessage Uncommented { string x = 1; }\n')
    result = subprocess.run([str(buf), "lint"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Uncommented" in result.stdout


def test_generated_code_is_current():
    build()
    assert is_current()
