"""The device's shell against Android's own: every corpus script runs on the emulated device through
adb and on the host's mksh + toybox; stdout and exit status must be identical, except for the
differences docs/emulator.md lists (with their reasons), and at least 95 % must be identical."""

from __future__ import annotations

import difflib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import adbutils
import pytest

from emulator.lifecycle import RunningDevice
from tests.conftest import AdbServer
from tests.emulator.conformance.corpus import (
    SCRIPT,
    Outcome,
    Script,
    available,
    folder_name,
    load_corpus,
    run_on_host,
    toybox_path,
)

DOCS = Path(__file__).parents[3] / "docs" / "emulator.md"
DEVICE_ROOT = "/data/local/tmp/conformance"
MIN_IDENTICAL = 0.95
WORKERS = 4

pytestmark = pytest.mark.skipif(not available(), reason="needs mksh and toybox (scripts/setup --test)")


def listed_differences() -> set[str]:
    """Script names in the first column of the docs' table of known differences."""
    text = DOCS.read_text()
    section = text.split("### Known differences", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M))


def run_on_device(device: adbutils.AdbDevice, script: Script) -> Outcome:
    result = device.shell2(f"cd {DEVICE_ROOT}/{folder_name(script)} && sh ./{SCRIPT}", v2=True, timeout=60)
    return Outcome(result.returncode, result.stdout)


def test_corpus_matches_mksh_and_toybox(adb_server: AdbServer, emulated_pixel: RunningDevice, tmp_path: Path) -> None:
    scripts = load_corpus()
    assert len(scripts) >= 150
    upload = tmp_path / "upload"
    for script in scripts:
        (upload / folder_name(script)).mkdir(parents=True)
        (upload / folder_name(script) / SCRIPT).write_text(script.text)
    device = adb_server.client.device(emulated_pixel.serial)
    device.shell(f"rm -rf {DEVICE_ROOT}; mkdir -p {DEVICE_ROOT}")
    pushed = adb_server.run("-s", emulated_pixel.serial, "push", f"{upload}/.", DEVICE_ROOT)
    assert pushed.returncode == 0, pushed.stderr
    path_folder = toybox_path(tmp_path / "toybox")
    # one at a time on the host: run concurrently, toybox's and coreutils' programs that start another
    # (tar z starting gzip, timeout its command) now and then found nothing on PATH (status 127)
    hosts = [run_on_host(s, tmp_path / "host", path_folder) for s in scripts]
    with ThreadPoolExecutor(WORKERS) as pool:
        devices = list(pool.map(lambda s: run_on_device(device, s), scripts))
    # a difference must survive a second host run: under load toybox's tar z (gzip as its child) has
    # now and then listed nothing on the host, while the device was right
    mismatches = {}
    for script, host, dev in zip(scripts, hosts, devices, strict=True):
        if host != dev and (again := run_on_host(script, tmp_path / "host-again", path_folder)) != dev:
            mismatches[script.name] = (again, dev)
    report = "\n".join(
        f"{name}: exit {h.status} on mksh, {d.status} on the device\n" + "".join(difflib.unified_diff(
            h.stdout.splitlines(True), d.stdout.splitlines(True), "mksh+toybox", "device", n=1))
        for name, (h, d) in mismatches.items())
    identical = 1 - len(mismatches) / len(scripts)
    print(f"{len(scripts)} scripts, {identical:.1%} identical; differences:\n{report}")
    listed = listed_differences()
    assert identical >= MIN_IDENTICAL, report
    assert not set(mismatches) - listed, f"differences not listed in docs/emulator.md:\n{report}"
    stale = sorted(listed - set(mismatches))
    assert not stale, f"listed in docs/emulator.md but now identical: {stale}"
