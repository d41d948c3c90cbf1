"""`edgeloop profiles` (issue 14): the profiles a user can name, including their own ($EDGELOOP_PROFILES)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploy.profiles import load_profile


def test_profiles_lists_the_shipped_ones_and_the_users_own(tmp_path: Path) -> None:
    own = tmp_path / "profiles"
    own.mkdir()
    text = Path(load_profile("pixel").path).read_text().replace("name: pixel", "name: my-phone")
    (own / "my-phone.yaml").write_text(text)
    edgeloop = Path(sys.executable).with_name("edgeloop")
    result = subprocess.run([str(edgeloop), "profiles"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "EDGELOOP_PROFILES": str(own), "COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert {"pixel", "pixel4", "galaxy-s23", "generic-arm64", "my-phone"} <= set(rows)
    assert "v73 htp" in rows["galaxy-s23"] and "cpu, gpu, gpu_fp16" in rows["pixel"]
    assert str(own / "my-phone.yaml") in rows["my-phone"]
