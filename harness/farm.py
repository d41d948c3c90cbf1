"""Regression runs on a device farm: models × profiles × runtimes from `matrix.yaml`, spread over the
devices that the inventory's adb servers report, with one combined report and a verdict.

    config: edgeloop.yaml        # the deployment file (relative to matrix.yaml); default: beside it
    profiles: [pixel, galaxy-s23]
    models: [digits]             # optional: default every model in the config
    runtimes: [cpu, gpu]         # optional: default the config's runtimes the profile has
    labels: [rack-a]             # optional: only devices carrying these labels
    runs: 5                      # measured runs per job: the samples of a latency verdict (5 or more)
    timeout_s: 300               # per job; past it the job is reported as hung
    max_tries: 3                 # attempts per job, each on another device, when a device is lost
    cooldown_temp: 40            # optional: each measured run waits until the device is below 40 °C
    cpu_mask: f0                 # optional: net-run on these cores only (taskset's hexadecimal mask)
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deploy.config import DEFAULT_CONFIG, RUN_PROPERTIES, load_config, run_setting
from deploy.errors import CheckFailed, DeviceError, EdgeloopError, Interrupted
from deploy.fsutil import flush_digests
from deploy.profiles import load_profile
from deploy.yamlnode import Node, load_yaml_node, validate
from harness.history.baseline import Baseline, load_baseline
from harness.history.record import record_run
from harness.history.store import ensure as ensure_history
from harness.inventory import Discovery, FarmDevice, discover, load_inventory
from harness.lease import LeaseBook
from harness.measure import RunOptions
from harness.pipeline import plan, run_job
from harness.report import ReportsNotWritten, ensure_report_root, new_report_dir, remove_temporaries
from harness.report.diff import DiffOptions, DiffReport, judge_with_rerun
from harness.report.farm import FarmPaths, job_result, write_farm_reports
from harness.report.results import JobResult
from harness.scheduler import Event, Executor, Outcome, Policy, Scheduler, Task
from harness.session import LEASE_TIMEOUT_S, server_session

MATRIX_HINT = "see docs/farm.md for the matrix.yaml format"


@dataclass(frozen=True)
class Matrix:
    path: Path
    config: Path
    profiles: tuple[str, ...]
    models: tuple[str, ...] | None = None
    runtimes: tuple[str, ...] | None = None
    labels: tuple[str, ...] = ()
    runs: int = 5  # fewer cannot make a latency growth significant at alpha 0.01 (report.diff)
    timeout_s: float = 300.0
    max_tries: int = 3
    run: RunOptions = field(default_factory=RunOptions)  # cooldown_temp, cpu_mask


_NAMES = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}
MATRIX_SCHEMA: dict[str, Any] = {  # matrix.yaml (this module's docstring, docs/farm.md)
    "type": "object",
    "required": ["profiles"],
    "additionalProperties": False,
    "properties": {
        "config": {"type": "string", "minLength": 1},
        "profiles": _NAMES | {"description": "which device profiles to run on"},
        "models": _NAMES,
        "runtimes": _NAMES,
        "labels": _NAMES,
        "max_tries": {"type": "integer", "minimum": 1},
        **RUN_PROPERTIES,  # runs, timeout_s, cooldown_temp, cpu_mask: their values checked by run_setting
    },
}


def load_matrix(path: Path) -> Matrix:
    """Read and validate `matrix.yaml` (MATRIX_SCHEMA); profiles are checked to exist."""
    try:
        root = load_yaml_node(Path(path), "matrix")
        data = root.data()
        validate(root, data, MATRIX_SCHEMA)
        run = _run_settings(root, data)
    except EdgeloopError as exc:
        raise EdgeloopError(exc.message, exc.hint or MATRIX_HINT) from None
    profiles = tuple(data["profiles"])
    for name in profiles:
        if name.endswith((".yaml", ".yml")):  # devices are matched to profiles by name: a file is none of them
            raise EdgeloopError(f"{path}: profiles: '{name}' is a file; the matrix names profiles",
                                "put the YAML in a folder listed in $EDGELOOP_PROFILES and give its name")
        try:
            load_profile(name)
        except EdgeloopError as exc:
            raise EdgeloopError(f"{path}: profiles: {exc.message}", exc.hint) from None
    config = Path(path).parent / str(data.get("config", DEFAULT_CONFIG))
    optional = {key: tuple(data[key]) if key in data else None for key in ("models", "runtimes")}
    return Matrix(path=Path(path), config=config, profiles=profiles, labels=tuple(data.get("labels", ())),
                  runs=run.get("runs", 5), timeout_s=float(run.get("timeout_s", 300.0)),
                  max_tries=data.get("max_tries", 3),
                  run=RunOptions(cooldown_c=run.get("cooldown_temp"), cpu_mask=run.get("cpu_mask")), **optional)


def _run_settings(root: Node, data: dict[str, Any]) -> dict[str, Any]:
    """The matrix's run settings given, checked at their lines by the deployment file's rule."""
    return {key: run_setting(key, data[key], f"{node.file}:{node.line}: {node.key}")
            for key in RUN_PROPERTIES if key in data for node in [root.at([key])]}


def plan_tasks(matrix: Matrix) -> list[Task]:
    """One task per (model, profile, runtime), from the deploy pipeline's own plan."""
    config = load_config(matrix.config)
    models = list(matrix.models) if matrix.models else None
    runtimes = list(matrix.runtimes) if matrix.runtimes else None
    tasks = []
    for profile in matrix.profiles:
        for job in plan(config, load_profile(profile), models=models, runtimes=runtimes):
            tasks.append(Task(id=f"{job.model.name}/{profile}/{job.runtime}", profile=profile, payload=job,
                              labels=matrix.labels, model=job.model.name, runtime=job.runtime))
    return tasks


def deploy_executor(matrix: Matrix, work_dir: Path, lease_wait_s: float = LEASE_TIMEOUT_S) -> Executor:
    """Run one planned deploy job on a farm device, in a session of its own (the device's lease on the
    device holds it against farm runs of other hosts too); each attempt gets its own folder."""

    def execute(task: Task, device: FarmDevice, attempt: int) -> Any:
        folder = work_dir / task.id.replace("/", "_") / f"attempt-{attempt}"
        with server_session(device.server, device.serial, f"farm {task.id}",
                            lease_timeout=lease_wait_s) as session:
            return run_job(task.payload, session, runs=matrix.runs, timeout=matrix.timeout_s, work_dir=folder,
                           options=matrix.run)

    return execute


def _unless(stop: threading.Event, execute: Executor) -> Executor:
    """After Ctrl-C the scheduler's workers go on draining the queue: jobs they take then end at once."""

    def guarded(task: Task, device: FarmDevice, attempt: int) -> Any:
        if stop.is_set():
            raise EdgeloopError("interrupted before it started")
        return execute(task, device, attempt)

    return guarded


RERUN = "rerun: to settle or confirm its latency verdict against the baseline"


def _with_rerun(first: Outcome, again: Outcome) -> Outcome:
    """The job's first outcome, its rerun's attempts added and, when the rerun passed, its runs too."""
    attempts = [*first.attempts, *(replace(a, detail=a.detail or RERUN) for a in again.attempts)]
    result = first.result
    if isinstance(result, JobResult) and isinstance(again.result, JobResult):
        result = result.with_rerun(again.result)
    return replace(first, attempts=attempts, result=result)


def _rerun(again: Scheduler) -> Callable[[list[Outcome]], list[Outcome]]:
    """Run jobs once more on `again` (any matching device, a folder of its own) and merge each rerun in."""

    def rerun(outcomes: list[Outcome]) -> list[Outcome]:
        redone = {o.task.id: o for o in again.run([o.task for o in outcomes])}
        return [_with_rerun(o, redone[o.task.id]) for o in outcomes]

    return rerun


@dataclass
class FarmRun:
    passed: bool
    outcomes: list[Outcome]
    events: list[Event]
    discovery: Discovery
    paths: FarmPaths
    baseline: DiffReport | None
    wall_s: float
    history_note: str | None = None  # where the run was recorded, or why not
    unwritten: ReportsNotWritten | None = None  # why `paths` are not there, if they are not

    @property
    def server_lost(self) -> str | None:
        """When nothing ran because adb servers went away: the line that says which (exit 3)."""
        gone = [e["detail"] for e in self.events if e["kind"] == "server-down"]
        ran = any(o.status in ("passed", "failed") for o in self.outcomes)
        return "; ".join(gone) + " before any job could run" if gone and not ran else None

    def check(self) -> None:
        """Raise DeviceError (exit 3) when nothing ran because adb servers went away, CheckFailed (exit 1) when
        a job failed or regressed; with no report written their hint says why, and a run that passed raises
        ReportsNotWritten (exit 2), as a deploy does (CI would find no junit.xml)."""
        where = self.unwritten.message if self.unwritten else f"see {self.paths.html}"
        if self.server_lost:
            raise DeviceError(self.server_lost, where)
        if not self.passed:
            raise CheckFailed("farm run failed", where)
        if self.unwritten:
            raise self.unwritten


def farm_run(
    inventory: Path,
    matrix: Path,
    *,
    baseline: Baseline | None = None,
    out_dir: Path | None = None,
    history: str | None = None,
    diff_options: DiffOptions | None = None,
    run_options: dict[str, Any] | None = None,
    lock_dir: Path | None = None,
    lease_wait_s: float = 600.0,
    execute: Executor | None = None,
    tasks: list[Task] | None = None,
    on_event: Callable[[Event], None] | None = None,
    on_finish: Callable[[Outcome, int, int], None] | None = None,
) -> FarmRun:
    """Discover devices, run every matrix job on a leased matching device, write the combined report
    (farm.json, farm.html with the device × model × runtime grid, report.json/html, junit.xml) and judge.

    `run_options` (`cooldown_c`, `cpu_mask`: RunOptions' fields) override the matrix's where not None.
    `execute` and `tasks` replace the deploy loop (benchmarks and scheduler tests use trivial jobs). With
    `history` (a location, harness.history.location), the run is recorded there; a baseline from the
    history is what it held before this run."""
    started = dt.datetime.now(dt.UTC)
    inv = load_inventory(inventory)
    mat = load_matrix(matrix)
    given = {key: value for key, value in (run_options or {}).items() if value is not None}
    if given:
        mat = replace(mat, run=replace(mat.run, **given))
    out = out_dir or new_report_dir(Path("reports"), "farm")
    jobs = tasks if tasks is not None else plan_tasks(mat)
    series = [(t.model or t.id, t.profile, t.runtime) for t in jobs]  # as job_result names them
    base_results = load_baseline(baseline, series) if baseline else None
    ensure_report_root(out, "--report-dir")
    if history is not None:
        ensure_history(history)
    found = discover(inv, list(mat.profiles))
    policy = Policy(timeout_s=mat.timeout_s, max_tries=mat.max_tries, lease_wait_s=lease_wait_s)
    finished: dict[str, Outcome] = {}
    interrupted = threading.Event()

    def finish(outcome: Outcome, done: int, total: int) -> None:
        finished[outcome.task.id] = outcome
        if on_finish is not None:
            on_finish(outcome, done, total)

    rerun = execute or deploy_executor(mat, out / "reruns", lease_wait_s)  # a folder of its own per rerun
    execute = execute or deploy_executor(mat, out / "jobs", lease_wait_s)
    farm = functools.partial(Scheduler, found.devices, passed=lambda r: bool(getattr(r, "passed", False)),
                             policy=policy, on_event=on_event)
    scheduler = farm(_unless(interrupted, execute), leases=LeaseBook(lock_dir), on_finish=finish,
                     run_id=f"farm:{os.getpid()}:{started:%H%M%S}")
    diff = None
    try:
        outcomes = scheduler.run(jobs)
        flush_digests()
        if base_results is not None:
            again = farm(_unless(interrupted, rerun), leases=LeaseBook(lock_dir), on_finish=on_finish,
                         run_id=f"farm:{os.getpid()}:{started:%H%M%S}:rerun")
            outcomes, diff = judge_with_rerun(base_results, outcomes, lambda o: job_result(o).to_json(),
                                              _rerun(again), diff_options or DiffOptions(), base_name=str(baseline),
                                              new_name=str(out))
            scheduler.events.extend(again.events)
    except KeyboardInterrupt:  # the jobs that finished are evidence: report them, and the rest as not run
        interrupted.set()
        outcomes = [finished.get(t.id) or Outcome(t, "interrupted", [], detail="interrupted before it finished")
                    for t in jobs]
        try:
            written = str(write_farm_reports(outcomes, scheduler.events, found, out,
                                             title=f"farm run {mat.path.name} (interrupted)", created=started,
                                             wall_s=(dt.datetime.now(dt.UTC) - started).total_seconds()).html)
        except ReportsNotWritten as exc:
            written = f"none written to {out}: {exc.why}"
        # jobs still running are not waited for: what they were writing when the process ends is left half
        # done under a temporary name (deploy.fsutil.atomic_path), so those go now and again at exit
        remove_temporaries(out)
        atexit.register(remove_temporaries, out)
        raise Interrupted(written) from None
    wall_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
    unwritten = None
    try:
        paths = write_farm_reports(outcomes, scheduler.events, found, out, title=f"farm run {mat.path.name}",
                                   created=started, wall_s=wall_s, baseline=diff)
    except ReportsNotWritten as exc:  # the run still ends on its verdict (FarmRun.check), in one line
        paths, unwritten = FarmPaths.of(out), exc
    passed = all(o.status == "passed" for o in outcomes) and not (diff and diff.regressed)
    note = None
    if history and unwritten is None:
        note = record_run(history, paths.deploy.json, kind="farm", project=mat.config.parent)
    return FarmRun(passed, outcomes, scheduler.events, found, paths, diff, wall_s, note, unwritten)
