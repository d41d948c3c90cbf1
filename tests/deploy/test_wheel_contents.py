"""A non-editable install must carry every data file the code loads: build the wheel from a copy of
the sources (offline: no build isolation), check its file list, install it into a bare folder and
load the profiles, packs, op tables and report schemas from there, with the checkout out of reach."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("deploy", "harness", "emulator")

# Run from the installed copy only: prints where each part was loaded from and what it found.
PROBE = """
import json, deploy
from deploy.opsupport import load_tables
from deploy.packs import available_packs, load_pack
from deploy.profiles import available_profiles, load_profile
from harness.report import document, farm
print(json.dumps({
    "deploy": deploy.__file__,
    "profiles": {name: load_profile(name).props["ro.product.model"] for name in available_profiles()},
    "packs": {name: load_pack(name).name for name in available_packs()},
    "tables": sorted(load_tables()),
    "schemas": [document.schema()["$schema"], json.loads(farm.FARM_SCHEMA_PATH.read_text())["$schema"]],
}))
"""


def _data_files() -> list[str]:
    """Every non-Python file inside the packages of the checkout (what the code may load at run time)."""
    return sorted(p.relative_to(ROOT).as_posix() for package in PACKAGES for p in (ROOT / package).rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


def test_wheel_ships_profiles_packs_and_templates_and_they_load_from_it(tmp_path: Path) -> None:
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "tasks.py"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", ".", "-w", str(tmp_path)],
                   cwd=source, check=True, capture_output=True)
    (wheel,) = tmp_path.glob("edgeloop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    data = _data_files()
    assert {f"deploy/device_profiles/{p}.yaml" for p in ("pixel", "pixel4", "galaxy-s23", "generic-arm64")} <= names
    assert any(n.startswith("deploy/packs/builtin/") and n.endswith(".j2") for n in names)
    assert [path for path in data if path not in names] == []

    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    shutil.rmtree(source)  # nothing of a checkout is left to fall back on
    env = {k: v for k, v in os.environ.items() if k not in ("EDGELOOP_PROFILES", "EDGELOOP_PACKS")}
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env={**env, "PYTHONPATH": str(target)},
                           check=True, capture_output=True, text=True)
    found = json.loads(probe.stdout)
    assert Path(found["deploy"]).is_relative_to(target)
    assert found["profiles"]["pixel"] == "Pixel 7"
    assert set(found["profiles"]) == {p.stem for p in (ROOT / "deploy" / "device_profiles").glob("*.yaml")}
    assert set(found["packs"]) >= {"builtin", "snpe", "qnn"}
    assert set(found["tables"]) == {"cpu", "gpu", "dsp", "aip"}
    assert all(found["schemas"])
