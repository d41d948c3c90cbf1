"""The data files inside the packages (op tables, packs, templates) must ship in a wheel: pyproject's
package-data globs have to cover every one of them, or a non-editable install breaks at run time."""

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_data_globs_cover_every_data_file_in_deploy() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = [pattern for patterns in config.values() for pattern in patterns]
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "deploy").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    data = [path for path in files if not path.endswith(".py")]
    assert any(path.startswith("deploy/packs/builtin/") for path in data)
    assert any(path.startswith("deploy/opsupport/") for path in data)
    unshipped = [path for path in data if not any(fnmatch.fnmatch(Path(path).name, g) for g in globs)]
    assert unshipped == []
