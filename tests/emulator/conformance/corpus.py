"""The conformance corpus: shell scripts in corpus/*.sh, each section after a `#### NAME` line one
script, run on the emulated device and on the host's mksh + toybox and compared.

Also a runner for the host side: each script in a scratch folder of its own, with a PATH holding
nothing but toybox's applets (and `sh`, `mksh`), as on a phone.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
MKSH, TOYBOX = Path("/usr/bin/mksh"), Path("/usr/bin/toybox")
SCRIPT = "script.sh"  # what each script is called in its folder, on both sides
TIMEOUT_S = 20
# Android has these, Debian's toybox 0.8.9 does not (Android builds toybox's dd, diff, expr and gzip,
# and ships one-true-awk): the host side uses Debian's own (docs/emulator.md lists what that changes).
HOST_STAND_INS = {"awk": "/usr/bin/mawk", "expr": "/usr/bin/expr", "dd": "/usr/bin/dd", "diff": "/usr/bin/diff",
                  "cmp": "/usr/bin/cmp", "gzip": "/usr/bin/gzip", "timeout": "/usr/bin/timeout", "tr": "/usr/bin/tr"}


@dataclass(frozen=True)
class Script:
    name: str  # FILE/SECTION, e.g. sed/s-global
    text: str


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str


def load_corpus(folder: Path = CORPUS) -> list[Script]:
    """Every `#### NAME` section of every corpus file, in file order."""
    scripts: list[Script] = []
    for path in sorted(folder.glob("*.sh")):
        name, lines = None, []
        for line in [*path.read_text().splitlines(), "#### "]:
            if line.startswith("#### "):
                if name is not None:
                    scripts.append(Script(f"{path.stem}/{name}", "\n".join(lines).strip("\n") + "\n"))
                name, lines = line[5:].strip(), []
            elif name is not None:
                lines.append(line)
    names = [s.name for s in scripts]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"corpus names used twice: {sorted(duplicates)}")
    return scripts


def folder_name(script: Script) -> str:
    return script.name.replace("/", "--")


def toybox_path(folder: Path) -> Path:
    """A folder of symbolic links, one per toybox applet, plus sh and mksh (and HOST_STAND_INS for
    what this toybox lacks): a phone's PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run([TOYBOX], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        (folder / name).symlink_to(TOYBOX)
    for name in ("sh", "mksh"):
        (folder / name).symlink_to(MKSH)
    for name, program in HOST_STAND_INS.items():
        if name not in applets and Path(program).exists():
            (folder / name).symlink_to(program)
    return folder


def run_on_host(script: Script, scratch: Path, path_folder: Path) -> Outcome:
    """`sh ./script.sh` in a folder of its own under `scratch`, with only toybox on PATH."""
    work = scratch / folder_name(script)
    work.mkdir(parents=True)
    (work / SCRIPT).write_text(script.text)
    env = {"PATH": str(path_folder), "HOME": str(work), "TMPDIR": str(work), "TZ": "UTC", "LANG": "C"}
    try:
        done = subprocess.run([str(MKSH), f"./{SCRIPT}"], cwd=work, env=env, capture_output=True,
                              timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Outcome(-1, "(timed out)")
    return Outcome(done.returncode, done.stdout.decode("utf-8", "replace"))


def available() -> bool:
    return MKSH.exists() and TOYBOX.exists() and os.access(TOYBOX, os.X_OK)
