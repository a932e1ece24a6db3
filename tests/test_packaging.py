"""pyproject.toml lists packages one by one (the layout maps storage/, control/, pipeline/ into
vigil.*): every package directory must be listed, or a wheel silently leaves it out."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for package, directory in config["package-dir"].items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            found.add(".".join([package, *relative.parts]))
    found.add("vigil.api.v1")  # generated at build time
    missing = sorted(p for p in found - listed if not p.startswith("vigil.api."))
    assert not missing, f"add to [tool.setuptools] packages: {missing}"
