"""The generated gRPC code is a build product: a server refuses to start on code older than the
.proto files, and says which command brings it up to date."""

from __future__ import annotations

import shutil

import pytest

from vigil import api_build
from vigil.api_build import ApiOutOfDate, ensure_current
from vigil.control.server import serve
from vigil.settings import VigilSettings


@pytest.fixture
def proto_copy(tmp_path):
    root = tmp_path / "proto"
    shutil.copytree(api_build.PROTO_ROOT / "vigil", root / "vigil")
    return root


def test_current_code_passes_the_check(proto_copy):
    ensure_current(proto_copy)


def test_a_changed_proto_file_is_stale(proto_copy):
    changed = proto_copy / "vigil" / "v1" / "camera.proto"
    changed.write_text(changed.read_text() + "\n// a change not yet generated\n")
    with pytest.raises(ApiOutOfDate) as refused:
        ensure_current(proto_copy)
    assert "python -m vigil.api_build" in str(refused.value)


async def test_the_server_refuses_stale_code_instead_of_regenerating(proto_copy, monkeypatch):
    changed = proto_copy / "vigil" / "v1" / "camera.proto"
    changed.write_text(changed.read_text() + "\n// a change not yet generated\n")
    monkeypatch.setattr(api_build, "PROTO_ROOT", proto_copy)
    stamp = api_build.STAMP.read_text()
    with pytest.raises(ApiOutOfDate, match="python -m vigil.api_build"):
        await serve(VigilSettings())
    assert api_build.STAMP.read_text() == stamp  # nothing was regenerated
