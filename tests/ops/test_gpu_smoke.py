"""deploy/gpu-smoke.sh cannot run here (no GPU, DeepStream or trtexec): these tests check what can
be checked without them. The script parses (bash -n, and shellcheck where installed); every file
of the repository it names exists; every `vigil` command and option it calls exists in the CLI;
the settings it exports validate; its Python client compiles and uses only messages, fields and
enum values that the generated API has."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from vigil.api.v1 import camera_pb2, common_pb2, event_pb2, node_pb2
from vigil.cli import app
from vigil.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "gpu-smoke.sh"
TEXT = SCRIPT.read_text()
MODULES = {"camera_pb2": camera_pb2, "common_pb2": common_pb2, "event_pb2": event_pb2, "node_pb2": node_pb2}


def client_source() -> str:
    match = re.search(r"<<'PY'\n(.*?)\nPY\n", TEXT, re.S)
    assert match, "the script's Python client (heredoc <<'PY') is missing"
    return match.group(1)


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="no shellcheck (apt-get install shellcheck)")
def test_script_is_shellcheck_clean():
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_repository_files_it_names_exist():
    named = set(re.findall(r"\$REPO_DIR/([\w./-]+)", TEXT))
    assert {"deploy/docker/gpu-entrypoint.sh", "triton_models"} <= named
    for path in named:
        assert (REPO / path).exists(), path
    assert '"build-only"' in (REPO / "deploy" / "docker" / "gpu-entrypoint.sh").read_text()
    for model in re.findall(r"MODEL_REPOSITORY/(\w+)/1/model.onnx", TEXT):
        assert (REPO / "triton_models" / model / "config.pbtxt").is_file(), model


def vigil_calls() -> list[list[str]]:
    """Each `vigil GROUP COMMAND [--option value]...` of the script (comments aside), as words."""
    calls = []
    for line in TEXT.replace("\\\n", " ").splitlines():  # continuation lines joined
        if not line.lstrip().startswith("#"):
            calls += [m.group(1).split() for m in re.finditer(r"(?:^|[\s($])vigil ([a-z]+ [a-z-]+[^>|&)]*)", line)]
    return calls


def test_every_vigil_command_and_option_exists():
    root = typer.main.get_command(app)
    seen = set()
    for words in vigil_calls():
        group = root.get_command(None, words[0])
        assert group is not None and hasattr(group, "get_command"), words
        command = group.get_command(None, words[1])
        assert command is not None, words
        options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        for word in words[2:]:
            if word.startswith("--"):
                assert word in options, (words, word)
        seen.add(f"{words[0]} {words[1]}")
    assert {"models prepare", "stack up", "stack down", "keys create", "control serve", "node run",
            "samples build"} <= seen


def test_settings_it_exports_validate(monkeypatch):
    for name, value in re.findall(r"export (VIGIL_[A-Z_]+)=\$\{[A-Z_]+:-([^}]+)\}", TEXT) + re.findall(
            r"export (VIGIL_[A-Z_]+)=([a-z]+)$", TEXT, re.M):
        monkeypatch.setenv(name, value.replace("$REPO_DIR", str(REPO)))
    settings = load_settings()
    assert settings.node.backend == "deepstream"
    assert "export VIGIL_TRITON__URL=127.0.0.1:8001" in TEXT  # the node embeds faces through Triton's gRPC API


def test_client_uses_only_what_the_generated_api_has():
    tree = ast.parse(client_source())
    checked = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in MODULES:
            assert hasattr(MODULES[node.value.id], node.attr), f"{node.value.id}.{node.attr}"
            checked += 1
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in MODULES):
            message = getattr(MODULES[node.func.value.id], node.func.attr)
            fields = set(message.DESCRIPTOR.fields_by_name)
            for keyword in node.keywords:
                assert keyword.arg in fields, f"{node.func.attr}.{keyword.arg}"
    assert checked >= 10
    for rpc in ("ListNodes", "GetNode", "CreateSite", "CreateDvr", "CreateCamera", "ListEvents", "DeleteCamera"):
        assert f".{rpc}(" in client_source(), rpc
