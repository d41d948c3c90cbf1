"""The deploy loop: plan → convert → quantize → bundle → push → run → pull → reference → compare.

`plan`, `prepare` and `run_job` are the pieces the farm and the pytest plugin reuse; `deploy` is
the command: it prepares every artifact before touching a device (so bad input fails fast, exit
2), runs each job, writes the reports and raises CheckFailed when anything did not pass.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import posixpath
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import adbutils
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from deploy import packs
from deploy.bundle import Bundle, bundle
from deploy.config import Config, ModelConfig, find_config, load_config, run_setting
from deploy.container import ContainerMeta, TensorInfo
from deploy.convert import convert
from deploy.errors import CheckFailed, DeviceError, EdgeloopError, Interrupted
from deploy.fsutil import atomic_write_text, flush_digests, sha256_file, write_reason
from deploy.inputlist import Labels, read_input_list, read_labels, result_path
from deploy.profiles import QUANTIZED_RUNTIMES, RUNTIME_UNITS, Profile, available_profiles, load_profile
from deploy.quantize import quantize
from deploy.yamlnode import did_you_mean
from harness.compare import error_histogram, is_classifier, judge, limits_for, measure
from harness.devices import (
    DEVICE_FAILURES,
    FoundDevice,
    connect,
    device_props,
    ensure_server,
    find_device,
    listening,
    parse_adb_address,
)
from harness.history.baseline import Baseline, load_baseline
from harness.history.record import record_run
from harness.history.store import ensure as ensure_history
from harness.lease import DeviceHolder
from harness.measure import RunMeasure, RunOptions, cool_down, device_measures, parse_measure
from harness.reference import reference_outputs
from harness.report import (
    ReportPaths,
    ReportsNotWritten,
    ensure_report_root,
    new_report_dir,
    write_reports,
)
from harness.report.diff import DiffOptions, DiffReport, judge_with_rerun
from harness.report.hints import next_steps
from harness.report.results import (
    DEVICE,
    ERROR,
    FAILED,
    HOST,
    PASSED,
    JobResult,
    LatencyStats,
    OutputResult,
    summarize_encodings,
)
from harness.report.terminal import human_size
from harness.run import Probe, run_bundle
from harness.session import LEASE_TIMEOUT_S, DeviceSession, device_session
from harness.store import PushInterrupted
from harness.timings import Timings, parse_timings
from harness.transfer import DEVICE_ROOT, Progress, pull_files, pull_tree

PhaseHook = Callable[[str], None]  # told the name of each phase as it starts
# Asked of every pack that offers it, unless the deployment file's `pack_options` say otherwise:
# per-layer times for the report's slowest layers.
PACK_OPTIONS = {"profiling_level": "basic"}


@dataclass(frozen=True)
class Job:
    """One model on one runtime of one device profile; `unsupported` says why it cannot run at all."""

    model: ModelConfig
    runtime: str
    profile: Profile
    pack: str = "builtin"
    unsupported: str | None = None
    pack_options: tuple[tuple[str, str], ...] = ()  # the deployment file's, validated against the pack

    @property
    def name(self) -> str:
        return f"{self.model.name}/{self.runtime}"


@dataclass(frozen=True)
class Artifacts:
    """What the host builds for a job (all cached by content)."""

    float_container: Path
    container: Path
    meta: ContainerMeta
    bundle: Bundle
    model_sha256: str
    container_sha256: str


def plan(config: Config, profile: Profile, models: list[str] | None = None,
         runtimes: list[str] | None = None) -> list[Job]:
    """Models × runtimes for `profile`. Without `runtimes`, each model's configured runtimes that the
    profile has; runtimes asked for explicitly that the profile lacks become `unsupported` jobs, so
    they are reported rather than silently dropped."""
    unknown_models = [m for m in models or [] if m not in config.models]
    if unknown_models:
        raise EdgeloopError(f"{config.path}: no model named '{unknown_models[0]}'",
                            did_you_mean(unknown_models[0], config.models))
    for runtime in runtimes or []:
        if runtime not in RUNTIME_UNITS:
            raise EdgeloopError(f"unknown runtime '{runtime}'", did_you_mean(runtime, RUNTIME_UNITS))
    jobs = []
    options = tuple(sorted(config.pack_options.items()))
    for name in models or list(config.models):
        model = config.models[name]
        for runtime in dict.fromkeys(runtimes or model.runtimes):
            if profile.supports(runtime):
                jobs.append(Job(model, runtime, profile, config.pack, pack_options=options))
            elif runtimes:
                try:
                    profile.require_runtime(runtime)
                except EdgeloopError as exc:
                    jobs.append(Job(model, runtime, profile, config.pack, unsupported=str(exc), pack_options=options))
    return jobs


def left_out(config: Config, profile: Profile, models: list[str] | None = None) -> list[str]:
    """The runtimes the deployment file asks of these models that the profile lacks (plan() skips them)."""
    wanted = dict.fromkeys(r for name in models or list(config.models) for r in config.models[name].runtimes)
    return [r for r in wanted if not profile.supports(r)]


def prepare(job: Job) -> Artifacts:
    """Convert, quantize when the runtime needs it (docs/spec.md §3: dsp/aip run quantized), and bundle."""
    model = job.model
    converted = convert(model.source, input_dims=model.input_dims or None, out_nodes=model.out_nodes or None)
    container, meta = converted.path, converted.meta
    if model.labels:  # a label that is no class of a classifier output: refused before any device
        labels = read_labels(model.labels)
        for tensor in meta.outputs:
            if is_classifier(tensor.shape):
                labels.check_classes(math.prod(tensor.shape))
    reference_outputs(container, model.input_list)  # cached; an input holding NaN or inf is refused now
    if job.runtime in QUANTIZED_RUNTIMES:
        quantized = quantize(container, model.calibration_list or model.input_list, options=model.quantization)
        container, meta = quantized.path, quantized.meta
    built = bundle(container, job.profile, job.runtime, model.input_list, pack=job.pack, name=model.name,
                   options=pack_options(job))
    return Artifacts(converted.path, container, meta, built, sha256_file(model.source), sha256_file(container))


def pack_options(job: Job) -> dict[str, str]:
    """The options the bundle is made with: ours (PACK_OPTIONS, where the pack offers them) under the
    deployment file's own."""
    pack = packs.load_pack(job.pack)
    ours = {key: value for key, value in PACK_OPTIONS.items()
            if key in pack.options and value in (pack.options[key].choices or (value,))}
    return {**ours, **dict(job.pack_options)}


@dataclass
class _Clock:
    """Wall time per phase, recorded in the report; tells an optional hook as each phase starts."""

    hook: PhaseHook | None = None
    phases: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.hook:
            self.hook(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start


class _JobFailed(Exception):
    """A job cannot go on; the message is the one-line reason that goes into the report."""


def run_job(job: Job, session: DeviceSession, *, runs: int = 1, timeout: float | None = None, work_dir: Path,
            on_phase: PhaseHook | None = None, on_bytes: Progress | None = None,
            artifacts: Artifacts | None = None, device_gone: Callable[[], str | None] | None = None,
            options: RunOptions | None = None) -> JobResult:
    """Prepare (cached; or use `artifacts` already prepared), push, run (`runs` measured runs, plus a
    warm-up when runs > 1; each measured on the device, as `options` say: harness.measure), pull, compare.

    Never raises for a job-level problem: a device that vanished, a crash, missing outputs or bad
    input all become a result with status `error` and a one-line `failure`. After a device failure,
    `device_gone` may say why the device is gone for good (an emulated device that stopped): that
    replaces the error's hint, which is written for a phone that can be reconnected."""
    result = JobResult(model=job.model.name, runtime=job.runtime, profile=job.profile.name, device=session.serial,
                       timing_source=HOST if session.emulated else DEVICE, run_dir=str(work_dir))
    if job.unsupported:
        result.failure = job.unsupported
        return result
    clock = _Clock(on_phase)
    try:
        _run(job, session, runs, timeout, work_dir, clock, on_bytes, result, artifacts, options or RunOptions())
    except _JobFailed as exc:
        result.status, result.failure = ERROR, str(exc)
    except EdgeloopError as exc:  # DeviceError included: reported, and the next job is tried
        result.status, result.failure = ERROR, str(exc)
        result.device_fault = isinstance(exc, DeviceError)
        if result.device_fault:
            server = session.lost_server()
            gone = server or (device_gone() if device_gone else None)
            if server:
                result.failure, result.server_lost = server, True
            elif gone:
                result.failure = f"{exc.message} ({gone})"
    except OSError as exc:
        if not _in_run_folder(exc, work_dir):
            raise
        result.status = ERROR
        result.failure = f"cannot write its run folder {work_dir} ({write_reason(work_dir, exc, folder=True)})"
    result.phases_s = {k: round(v, 4) for k, v in clock.phases.items()}
    return result


def _in_run_folder(exc: OSError, work_dir: Path) -> bool:
    """Whether the error is the job's own run folder refusing a write (a file in its way, read-only, a full
    disk): that is the job's error, in one line. Any other OSError is not, and goes on."""
    if not exc.filename:
        return False
    where = Path(exc.filename)
    return where.is_relative_to(work_dir) or work_dir.is_relative_to(where)


def _run(job: Job, session: DeviceSession, runs: int, timeout: float | None, work_dir: Path, clock: _Clock,
         on_bytes: Progress | None, result: JobResult, artifacts: Artifacts | None, options: RunOptions) -> None:
    _check_runs(runs, timeout)
    with clock.phase("prepare"):
        art = artifacts or prepare(job)
    result.model_sha256, result.container_sha256 = art.model_sha256, art.container_sha256
    result.container_kind, result.bundle_id = art.meta.kind, art.bundle.id
    result.container_bytes = art.container.stat().st_size
    result.encodings = summarize_encodings(art.meta.encodings, art.meta.quantization)
    work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work_dir / "run.sh", (art.bundle.path / "run.sh").read_text())
    with clock.phase("device"):  # facts the session learnt when it took the device: no request here
        atomic_write_text(work_dir / "device.json", json.dumps(session.props, indent=2, sort_keys=True) + "\n")
        _check_runner(session, job.pack)  # the name or folder the file gave (bundle.pack is the bare name)
    with clock.phase("push"):
        try:
            pushed = session.install(art.bundle, on_bytes)
        except PushInterrupted as exc:  # what did reach the device counts, and is kept for next time
            result.bytes_pushed = exc.bytes_sent
            raise
        result.bytes_pushed = pushed.bytes_sent
    inferences = len(read_input_list(job.model.input_list).entries)
    result.run_options = {"cpu_mask": options.cpu_mask, "cooldown_c": options.cooldown_c,
                          "perf_profile": _bundle_options(art.bundle).get("perf_profile")}
    probe = Probe(PurePosixPath(packs.load_pack(job.pack).program.source).name, options.cpu_mask)
    timings, measured, outputs_dir, unreadable = _execute(session, art, pushed.remote_dir, runs, timeout, work_dir,
                                                          clock, inferences, probe, options)
    result.runs = runs
    result.measures = device_measures(measured)
    if unreadable:
        result.warnings.append(f"no latency figures: {unreadable}")
    else:
        result.latency = LatencyStats.from_runs(timings)
    with clock.phase("compare"):
        device_out = load_outputs(outputs_dir, art.meta.outputs, inferences)
        reference, _ = reference_outputs(art.float_container, job.model.input_list)
        classes = read_labels(job.model.labels) if job.model.labels else None
        result.outputs = [_compare(job, tensor, reference[tensor.name], device_out[tensor.name], classes)
                          for tensor in art.meta.outputs]
    failures = [f"{o.name}: {reason}" for o in result.outputs for reason in o.verdict.reasons]
    result.status = FAILED if failures else PASSED
    result.failure = "; ".join(failures) or None
    result.hints = next_steps(result, (art.float_container, art.container, job.model.input_list))


def _bundle_options(built: Bundle) -> dict[str, str]:
    """The pack options a bundle was made with, defaults included (its manifest)."""
    return json.loads((built.path / "manifest.json").read_text()).get("options") or {}


def _cool_down(session: DeviceSession, options: RunOptions, clock: _Clock) -> float:
    """Seconds waited for the device to cool below --cooldown-temp (0 without it)."""
    if options.cooldown_c is None:
        return 0.0
    with clock.phase("cooldown"):
        return cool_down(session.device, options.cooldown_c, timeout_s=options.cooldown_timeout_s).waited_s


def _execute(session: DeviceSession, art: Artifacts, job_dir: PurePosixPath, runs: int,
             timeout: float | None, work_dir: Path, clock: _Clock, inferences: int, probe: Probe,
             options: RunOptions) -> tuple[list[Timings], list[RunMeasure], Path, EdgeloopError | None]:
    """A warm-up run when runs > 1, then `runs` measured runs, each into a run folder of its own on the
    device and measured there by `probe` (after waiting for the device to cool, when `options` ask); pull
    every run's timings and the last run's outputs. Returns the timings, the measurements, the local
    folder holding the outputs to compare, and why the timings could not be read (a vendor's binary log
    without its SDK's host tool, a malformed file), if so: the outputs are still compared and the missing
    latency is reported as a warning. A run folder goes with the request that pulled it whole; whatever is left
    goes when the session ends."""
    labels = (["warmup"] if runs > 1 else []) + [f"run-{n}" for n in range(1, runs + 1)]
    timings: list[Timings] = []
    measured: list[RunMeasure] = []
    unreadable: EdgeloopError | None = None
    for label in labels:
        waited = 0.0 if label == "warmup" else _cool_down(session, options, clock)
        remote = session.new_run(label)
        output_dir = posixpath.relpath(remote, job_dir)  # the run contract: relative to the job's folder
        with clock.phase("warm-up" if label == "warmup" else "run"):
            outcome = run_bundle(session.device, job_dir, output_dir, work_dir / label, timeout=timeout,
                                 probe=probe)
        if outcome.exit_code != 0:
            raise _JobFailed(outcome.describe())
        if label == "warmup":
            continue
        measured.append(parse_measure(outcome.stdout, waited))
        local = work_dir / label / "output"
        names = [art.bundle.timings_path]
        if label == labels[-1]:  # the last run's outputs are the ones compared
            names += [result_path(PurePosixPath("."), i, t.name).as_posix()
                      for i in range(inferences) for t in art.meta.outputs]
        with clock.phase("pull"):
            missing = pull_files(session.device, remote, names, local, remove=True)
            if missing:
                pull_tree(session.device, remote, local)  # keep whatever net-run did write, for the post-mortem
                raise _JobFailed(f"net-run wrote no {missing[0]}" + (
                    f" (and {len(missing) - 1} more files are missing)" if len(missing) > 1 else ""))
        try:
            timings.append(parse_timings(art.bundle.timings_format, local / art.bundle.timings_path))
        except EdgeloopError as exc:
            unreadable = unreadable or exc
    return timings, measured, work_dir / labels[-1] / "output", unreadable


def _check_runs(runs: int, timeout: float | None = None) -> None:
    """The rule of the flags and the deployment file's `run:` section (NaN refused: every run would stop at once)."""
    run_setting("runs", runs)
    if timeout is not None:
        run_setting("timeout_s", timeout)


def _check_runner(session: DeviceSession, pack_name: str) -> None:
    """The built-in pack's net-run is part of the emulated device's system image; a real phone needs
    a vendor SDK pack, and the line says which variable points edgeloop at it."""
    try:
        packs.load_pack(pack_name).check_device(emulated=session.emulated)
    except EdgeloopError:
        if session.emulated:
            raise
        raise EdgeloopError(f"{session.serial} has no built-in net-run (a real phone) and pack '{pack_name}' runs only "
                            "on the emulated device", "set SNPE_ROOT and `pack: snpe` (or QNN_SDK_ROOT and "
                            "`pack: qnn`) in the deployment file") from None


def load_outputs(folder: Path, tensors: list[TensorInfo], inferences: int) -> dict[str, list[np.ndarray]]:
    """Read `Result_<i>/<tensor>.raw` for every inference; a missing or wrongly sized file fails the
    job: a partial output is never compared as if it were complete."""
    outputs: dict[str, list[np.ndarray]] = {t.name: [] for t in tensors}
    for i in range(inferences):
        for tensor in tensors:
            rel = result_path(PurePosixPath("."), i, tensor.name)
            path = folder / rel
            if not path.is_file():
                raise _JobFailed(f"net-run wrote no {rel} (output '{tensor.name}' of inference {i})")
            size = path.stat().st_size
            if size != tensor.nbytes:
                raise _JobFailed(f"{rel} has {size} bytes, expected {tensor.nbytes} "
                                 f"({tensor.dtype} {list(tensor.shape)})")
            outputs[tensor.name].append(np.fromfile(path, dtype=np.dtype(tensor.dtype).newbyteorder("<"))
                                        .reshape(tensor.shape))
    return outputs


def _compare(job: Job, tensor: TensorInfo, reference: list[np.ndarray], device: list[np.ndarray],
             labels: Labels | None) -> OutputResult:
    if len(reference) != len(device):
        raise _JobFailed(f"{len(device)} device inferences for {len(reference)} reference ones")
    if labels is not None and len(labels.values) != len(reference):
        raise EdgeloopError(f"{job.model.labels}: {len(labels.values)} labels for {len(reference)} inferences",
                            "write one label per line of the input list")
    limits = limits_for(job.model.thresholds, job.runtime, tensor.name)
    metrics = measure(reference, device, labels)
    return OutputResult(tensor.name, tensor.shape, metrics, limits, judge(metrics, limits),
                        error_histogram(reference, device))


@dataclass
class DeployOutcome:
    results: list[JobResult]
    reports: ReportPaths
    device: str  # adb serial
    bytes_pushed: int = 0
    unwritten: ReportsNotWritten | None = None  # why `reports` are not there, if they are not
    baseline: DiffReport | None = None  # the comparison with --baseline
    baseline_name: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def check(self) -> None:
        """Raise CheckFailed (exit 1) unless every job ran and passed and nothing regressed against the
        baseline; DeviceError (exit 3) when the adb server went away; with no report written, their line
        says why instead of where the report is, and a deploy that passed raises ReportsNotWritten (exit 2):
        CI would find no junit.xml."""
        unwritten = self.unwritten.message if self.unwritten else None
        lost = next((r for r in self.results if r.server_lost), None)
        if lost is not None:
            raise DeviceError(str(lost.failure), unwritten or f"reports of what did run: {self.reports.html}")
        if not self.passed:
            bad = [r for r in self.results if not r.passed]
            raise CheckFailed(f"{len(bad)} of {len(self.results)} deploy checks did not pass "
                              f"({', '.join(r.name for r in bad)})", unwritten or f"see {self.reports.html}")
        if self.baseline is not None and self.baseline.regressed:
            raise CheckFailed(f"{len(self.baseline.regressions)} regression(s) against {self.baseline_name}",
                              unwritten or f"see {self.reports.html}")
        if self.unwritten:
            raise self.unwritten


def deploy(profile_name: str | None, *, config_path: Path | None = None, models: list[str] | None = None,
           runtimes: list[str] | None = None, serial: str | None = None, adb: str | None = None,
           emulate: bool = False, runs: int = 1, timeout: float | None = None,
           report_root: Path = Path("reports"), console: Console | None = None,
           lease_timeout: float = LEASE_TIMEOUT_S, history: str | None = None, baseline: Baseline | None = None,
           diff_options: DiffOptions | None = None, options: RunOptions | None = None) -> DeployOutcome:
    """The whole loop for one device profile (without one, the deployment file's single `devices`
    entry), in one session on the device (a second deploy to it waits up to `lease_timeout`); see
    docs/deploy.md. With `history` (a location, harness.history.location), the run is recorded there.
    With `baseline`, the run is compared with it before the reports are written (judge_with_rerun: a job
    whose latency verdict is undecided or a regression runs once more, in the same session)."""
    console = console or Console(stderr=True)
    _check_runs(runs, timeout)
    if emulate and serial:
        raise EdgeloopError(f"--serial {serial} and --emulate exclude each other",
                            "--emulate deploys to the device it starts; drop one of them")
    config = load_config(find_config(config_path))
    profile = load_profile(profile_name or configured_device(config))
    jobs = plan(config, profile, models, runtimes)
    runnable = [j for j in jobs if not j.unsupported]
    if not runnable:
        _nothing_to_run(profile, jobs)
    base = load_baseline(baseline, [(j.model.name, profile.name, j.runtime) for j in jobs]) if baseline else None
    address = parse_adb_address(adb)
    ensure_report_root(report_root, "--report-dir")  # bad input first, then the folder, then any device
    if history is not None:
        ensure_history(history)
    missing = left_out(config, profile, models) if not runtimes else []
    if missing:  # a note once the input is known good: an error is then its one line
        console.print(f"{profile.name} has no {', '.join(missing)} runtime: those jobs of {config.path} are left "
                      f"out (name them with --runtime to have them reported as errors)", markup=False, soft_wrap=True)
    booting = _boot(str(profile.path)) if emulate else None  # starts while the host builds; a profile YAML too
    try:
        with _progress(console) as progress:
            task = progress.add_task("build", total=len(runnable))
            built: dict[str, tuple[Artifacts, float]] = {}
            for job in runnable:
                progress.update(task, description=f"build {job.name}")
                start = time.perf_counter()
                built[job.name] = prepare(job), time.perf_counter() - start
                progress.advance(task)
        flush_digests()
        client = ensure_server(address)
        with _target_device(client, profile, serial, booting, console) as found, \
                device_session(found, f"deploy {profile.name}", lease_timeout=lease_timeout,
                               on_wait=_say_waiting(console, found.serial, lease_timeout)) as session:
            report_dir = new_report_dir(report_root, f"{profile.name}-{found.serial}")
            gone = _emulated_gone(booting)
            results: list[JobResult] = []
            interrupted = False
            unwritten: ReportsNotWritten | None = None
            diff: DiffReport | None = None
            try:
                with _progress(console) as progress:
                    task = progress.add_task("deploy", total=len(jobs))
                    for job in jobs:
                        work_dir = _job_dir(report_dir, job)
                        if gone and (why := gone()):
                            results.append(_not_run(job, found.serial, work_dir, f"not run: {why}"))
                            continue
                        status = _Status(progress, task, job.name)
                        artifacts, build_s = built.get(job.name, (None, 0.0))
                        result = run_job(job, session, runs=runs, timeout=timeout, on_phase=status.phase,
                                         on_bytes=status.sent, artifacts=artifacts, work_dir=work_dir,
                                         device_gone=gone, options=options)
                        # built up front, before the device: its time belongs to this job's prepare phase
                        result.phases_s["prepare"] = round(result.phases_s.get("prepare", 0.0) + build_s, 4)
                        results.append(result)
                        progress.advance(task)
                if base is not None:
                    again = functools.partial(run_job, session=session, runs=runs, timeout=timeout, device_gone=gone,
                                              options=options)
                    rerun = _rerun(jobs, again, built, report_dir, console)
                    results, diff = judge_with_rerun(base, results, JobResult.to_json, rerun,
                                                     diff_options or DiffOptions(), base_name=str(baseline),
                                                     new_name=str(ReportPaths.of(report_dir).json))
            except KeyboardInterrupt:
                interrupted = True
                raise
            finally:  # also on Ctrl-C: the run folders are evidence, and the reports say what did not finish
                results += [_not_run(job, found.serial, _job_dir(report_dir, job), "interrupted before it finished")
                            for job in jobs[len(results):]]
                try:
                    paths = write_reports(results, report_dir, devices={found.serial: found.props},
                                          title=f"edgeloop deploy on {profile.name} ({found.label})", baseline=diff)
                except ReportsNotWritten as exc:  # the deploy still ends on its verdict (DeployOutcome.check)
                    paths, unwritten = ReportPaths.of(report_dir), exc
                if interrupted:
                    raise Interrupted(f"none written to {report_dir}: {unwritten.why}" if unwritten
                                      else str(paths.folder)) from None
    finally:
        if booting is not None:
            _shutdown(booting)
    if history is not None and unwritten is None:
        console.print(record_run(history, paths.json, kind="deploy", project=config.path.parent), markup=False,
                      soft_wrap=True)
    return DeployOutcome(results, paths, found.serial, sum(r.bytes_pushed for r in results), unwritten, diff,
                         str(baseline))


def _rerun(jobs: list[Job], run: Callable[..., JobResult], built: dict[str, tuple[Artifacts, float]],
           report_dir: Path, console: Console) -> Callable[[list[JobResult]], list[JobResult]]:
    """Run jobs once more (`run`: run_job in this session) into `reruns/` and merge each rerun's runs in; a
    rerun that did not pass leaves the job as it was, with a warning saying why."""
    by_name = {job.name: job for job in jobs}

    def rerun(results: list[JobResult]) -> list[JobResult]:
        merged = []
        for first in results:
            job = by_name[first.name]
            console.print(f"{job.name}: run once more to settle its latency verdict against the baseline",
                          markup=False, soft_wrap=True)
            again = run(job, artifacts=built[job.name][0], work_dir=report_dir / "reruns" / job.name.replace("/", "-"))
            if not again.passed:
                first.warnings.append(f"the rerun to settle its latency verdict did not pass: {again.failure}")
            merged.append(first.with_rerun(again))
        return merged

    return rerun


def _say_waiting(console: Console, serial: str, wait_s: float) -> Callable[[DeviceHolder], None]:
    """One line when the device is busy, and another if its holder changes while this deploy waits."""
    told: set[str] = set()

    def say(holder: DeviceHolder) -> None:
        if holder.token not in told:
            told.add(holder.token)
            console.print(f"device {serial} is in use by {holder.describe()}; waiting for it "
                          f"(up to {wait_s:.0f} s, --lease-timeout)")

    return say


def configured_device(config: Config) -> str:
    """The profile to deploy to when none is named: the deployment file's `devices` entry, if it has
    exactly one (with several, which one is the user's choice)."""
    if len(config.devices) == 1:
        return config.devices[0]
    if not config.devices:
        raise EdgeloopError(f"no --device given and {config.path} lists no devices",
                            "give --device PROFILE, or `devices: [PROFILE]` in the deployment file")
    raise EdgeloopError(f"no --device given and {config.path} lists several devices ({', '.join(config.devices)})",
                        "choose one with --device")


def _job_dir(report_dir: Path, job: Job) -> Path:
    return report_dir / "runs" / job.name.replace("/", "-")


def _not_run(job: Job, serial: str, work_dir: Path, why: str) -> JobResult:
    """A job the deploy did not get to finish: an error, never a pass."""
    return JobResult(model=job.model.name, runtime=job.runtime, profile=job.profile.name, device=serial,
                     failure=why, run_dir=str(work_dir) if work_dir.exists() else "")


def _emulated_gone(booting: Future | None) -> Callable[[], str | None] | None:
    """For a deploy that started its own emulated device: says so once that device has stopped, or is
    stopping (`emulator.stop` from another shell): the device closes its port first, then its
    connections, and its process lives on for seconds while they wind down."""
    if booting is None:
        return None
    running = booting.result()
    return lambda: (None if running.alive() and listening("127.0.0.1", running.port)
                    else f"the emulated device {running.name} stopped; deploy again")


def _nothing_to_run(profile: Profile, jobs: list[Job]) -> None:
    """Bad input: say why, and which profiles have the runtimes asked for."""
    if not jobs:
        raise EdgeloopError(f"nothing to deploy on profile '{profile.name}': the deployment file's runtimes are "
                            f"not among its runtimes", f"pick some with --runtime: {', '.join(profile.runtimes)}")
    wanted = list(dict.fromkeys(j.runtime for j in jobs))
    others = [name for name in available_profiles()
              if all(load_profile(name).supports(r) for r in wanted)]
    raise EdgeloopError(str(jobs[0].unsupported), f"profiles with {', '.join(wanted)}: {', '.join(others) or 'none'}")


def _boot(profile: str) -> Future:
    """Start an emulated device in the background; it never outlives this process."""
    from emulator.lifecycle import start_device  # the harness starts an emulator only when asked

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeloop-boot")
    try:
        return pool.submit(start_device, profile, exit_with_parent=True)
    finally:
        pool.shutdown(wait=False)


def _shutdown(booting: Future) -> None:
    with contextlib.suppress(EdgeloopError):
        booting.result().stop()


@dataclass
class _Status:
    """The progress line of the job being run: its phase, and the bytes pushed so far."""

    progress: RichProgress
    task: TaskID
    job: str
    current: str = ""
    pushed: int = 0

    def phase(self, name: str) -> None:
        self.current = name
        self.progress.update(self.task, description=f"{self.job}: {name}")

    def sent(self, n: int) -> None:
        self.pushed += n
        self.progress.update(self.task, description=f"{self.job}: {self.current} {human_size(self.pushed)}")


def _progress(console: Console) -> RichProgress:
    """Only on a terminal: in a log a transient bar leaves nothing but an empty line."""
    return RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal)


@contextlib.contextmanager
def _target_device(client: adbutils.AdbClient, profile: Profile, serial: str | None, booting: Future | None,
                   console: Console) -> Iterator[FoundDevice]:
    """The device to deploy to: the emulated one being started, or the one device matching `profile`."""
    if booting is None:
        yield find_device(client, profile, serial)
        return
    running = booting.result()
    kept = running.sandbox_root.joinpath(*DEVICE_ROOT.parts[1:])
    reused = (f"; bundles kept from an earlier run, after this deploy `invoke emulator.reset -n {running.name}` "
              f"empties it") if kept.is_dir() else ""
    # the device's own name: concurrent deploys get one each (pixel, pixel-2, ...), never a shared state
    console.print(f"emulated {profile.name} started as {running.serial} (device {running.name}{reused})",
                  markup=False, soft_wrap=True)
    device = connect(client, running.serial)
    try:
        yield FoundDevice(running.serial, device_props(device), device)
    finally:
        with contextlib.suppress(*DEVICE_FAILURES):
            client.disconnect(running.serial)
