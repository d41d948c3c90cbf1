"""The README stays true: its two opening commands, the tasks it names and the docs it lists exist."""

import re
from pathlib import Path

import tasks

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    block = re.search(r"```\n(.*?)```", README, re.S)
    assert block and README.index("```") < README.index("## ")
    deploy, test = block.group(1).strip().splitlines()
    assert deploy == "scripts/setup && .venv/bin/invoke deploy --device pixel --emulate"
    assert test in (ROOT / ".ci" / "run").read_text()


def test_every_task_the_readme_names_exists() -> None:
    named = set(re.findall(r"invoke ([a-z_]+(?:\.[a-z_]+)?)", README))
    named |= {f"emulator.{t}" for t in re.findall(r"`emulator\.([a-z]+)`", README)}
    known = set(tasks.ns.task_names) | {n for n in tasks.ns.task_names for n in tasks.ns.task_names[n]}
    assert named and named <= known, sorted(named - known)


def test_every_document_the_readme_lists_exists() -> None:
    paths = set(re.findall(r"`((?:docs|bench|examples)/[\w/.-]+\.md)`", README))
    assert len(paths) >= 10
    assert [p for p in paths if not (ROOT / p).is_file()] == []
