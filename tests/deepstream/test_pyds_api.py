"""Every pyds name pipeline/deepstream uses exists in the public pyds API, as recorded (with its
documentation sources) in pipeline/deepstream/pyds_api.json. pyds itself is not installable
here; attributes read off metadata objects are covered by the pyds-shaped fakes, which expose
only the documented attributes (tests/deepstream/fakes.py)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline/deepstream"
API = json.loads((PACKAGE / "pyds_api.json").read_text())


def chains(tree):
    """Attribute chains rooted at the pyds module: `pyds.X.Y` or `self.ds.X.Y` → (X, Y|None)."""
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        parts, cur = [], node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        parts.reverse()
        if isinstance(cur, ast.Name) and cur.id == "pyds":
            rest = parts
        elif isinstance(cur, ast.Name) and cur.id == "self" and parts[:1] == ["ds"]:
            rest = parts[1:]
        else:
            continue
        if rest:
            found.add((rest[0], rest[1] if len(rest) > 1 else None))
    return found


def test_only_documented_pyds_names_are_used():
    used = set()
    for path in PACKAGE.glob("*.py"):
        used |= chains(ast.parse(path.read_text()))
    assert used, "the scan found no pyds use at all"
    unknown = []
    for first, second in sorted(used, key=str):
        if first in API["functions"]:
            assert second is None, f"pyds.{first}.{second}"
        elif first in API["classes"]:
            if second is not None and second not in API["classes"][first]:
                unknown.append(f"pyds.{first}.{second}")
        else:
            unknown.append(f"pyds.{first}")
    assert not unknown, f"not in the documented pyds API: {unknown}"
    # the scan sees the calls the backend depends on
    assert {("gst_buffer_get_nvds_batch_meta", None), ("NvDsFrameMeta", "cast"),
            ("nvds_obj_enc_process", None), ("get_nvds_LayerInfo", None)} <= used


def test_pyds_is_imported_lazily():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level: no pyds, gi or Gst imports
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pyds", "gi") for n in names), path.name
