"""invoke tasks: argument parsing and printing only; the logic lives in deploy/, harness/, emulator/.

`invoke --list` shows them; the `edgeloop` console command offers the same tasks.
Each section below belongs to one part of the tool; keep tasks thin.
"""

from __future__ import annotations

from invoke import Collection, Program, task

from deploy import TOOL_VERSION
from harness.console import console, user_errors

# ---- emulator ----------------------------------------------------------------------------

# ---- build pipeline (convert, info, inputs, bundle, clean) -------------------------------

# ---- quantizer ----------------------------------------------------------------------------

# ---- deploy -------------------------------------------------------------------------------

# ---- farm and reports ---------------------------------------------------------------------


@task
@user_errors
def version(c):
    """Print edgeloop's version."""
    console.print(f"edgeloop {TOOL_VERSION}")


ns = Collection.from_module(__import__(__name__))


def main() -> None:
    """Entry point of the `edgeloop` console command."""
    Program(namespace=ns, name="edgeloop", binary="edgeloop", version=TOOL_VERSION).run()
