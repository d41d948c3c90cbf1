"""invoke tasks: argument parsing and printing only; the logic lives in deploy/, harness/, emulator/.

`invoke --list` shows them; the `edgeloop` console command offers the same tasks.
Each section below belongs to one part of the tool; keep tasks thin.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import invoke
from invoke import Argument, Collection, Program, Task

from deploy import TOOL_VERSION
from harness.console import EdgeloopProgram, console, err_console, number, user_errors

# ---- emulator ----------------------------------------------------------------------------

_HELP_FLAGS = frozenset({"-h", "--help"})


class _PositionalArgument(Argument):
    """A required positional argument that lets `-h`/`--help` through. invoke hands `--help` to the first
    positional still missing, as its value, then stops at the next one ("did not receive required
    positional arguments") before the task can answer; once one of a task's positionals got it, the
    others count as given (empty), so the task runs and prints its help (`_asked_for_help`)."""

    def __init__(self, helped: list[bool], original: Argument) -> None:
        super().__init__(names=original.names, kind=original.kind, default=original.default, help=original.help,
                         positional=True, optional=original.optional, attr_name=original.attr_name)
        self.helped = helped  # shared by the task's positionals

    @property
    def value(self) -> Any:
        return "" if self._value is None and self.helped else super().value

    @value.setter
    def value(self, arg: str) -> None:
        if arg in _HELP_FLAGS:
            self.helped.append(True)
        self.set_value(arg, cast=True)


_NOT_SHORT_FLAGS = frozenset("h-0123456789")  # `-h` means help; `-1` is a negative number; `--` is no flag


class EdgeloopTask(Task):
    """invoke's Task with two fixes: its automatic short flags are letters other than `h` (it means help
    everywhere; `inputs -h` was `--check`; deploy's `-1` for --top1-margin made `--runs -1` lack its value
    and cpu-mask's was `--`), and the help texts survive a second look (invoke consumes them while
    building the arguments, so a task's `--help` printed by a second parser had none)."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        return super().arg_opts(name, default, {*taken_names, *_NOT_SHORT_FLAGS})

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        kept = dict(self.help)
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept


task = functools.partial(invoke.task, klass=EdgeloopTask)


class HelpfulTask(EdgeloopTask):
    """A task with required positional arguments whose `--help` works (`@task(klass=HelpfulTask)`)."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        helped: list[bool] = []
        return [_PositionalArgument(helped, a) if a.positional else a
                for a in super().get_arguments(ignore_unknown_help)]


def _asked_for_help(name: str, *positionals: str) -> bool:
    """True, once the task's help is printed, when a positional argument was `-h`/`--help`."""
    import sys

    if _HELP_FLAGS.isdisjoint(positionals):
        return False
    binary = "edgeloop" if Path(sys.argv[0]).name == "edgeloop" else "inv[oke]"  # as the running program says
    Program(namespace=ns, binary=binary).run(["invoke", "--help", name], exit=False)
    return True


_FAULT_HELP = ("fault as name=value (repeatable): drop_after_bytes=N, throttle_bps=N, storage_full, "
               "netrun_crash, netrun_hang, drop_once, slowdown=F (net-run computes F times as long)")


def _emulator_collection() -> Collection:
    """emulator.* (defined here so they are not also top-level tasks)."""

    @task(name="start", iterable=["fault", "adb_key"], help={
        "profile": "device profile (pixel, pixel4, galaxy-s23, generic-arm64 or a YAML path)",
        "port": "TCP port on 127.0.0.1 (default: a free one; an odd port in 5555-5585 is found by adb itself)",
        "name": "device name (default: the profile's name, then <profile>-2, ...)",
        "fault": _FAULT_HELP,
        "connect": "also `adb connect` it to the adb server on --adb-port",
        "adb_port": "adb server port for --connect (default $ANDROID_ADB_SERVER_PORT, else 5037, as adb's own)",
        "adb_key": "also accept this adb public key file (repeatable; your own ~/.android/adbkey.pub always is)",
        "insecure": "accept any host without adb's RSA authentication (ro.adb.secure=0; docs/emulator.md)"})
    @user_errors
    def emulator_start(c, profile="pixel", port=None, name=None, fault=None, connect=False, adb_port=None,
                       adb_key=None, insecure=False):
        """Start an emulated Android device in the background and print its adb serial."""
        from emulator.device import Faults, parse_fault_items
        from emulator.lifecycle import start_device
        from harness.devices import parse_adb_address

        faults = Faults.from_mapping(parse_fault_items(fault or []), "--fault")
        server_port = None
        if connect:
            server_port = number(adb_port, "--adb-port", int) if adb_port else parse_adb_address().port
        device = start_device(profile, name=name, port=number(port, "--port", int) if port else None, faults=faults,
                              adb_port=server_port, adb_keys=tuple(Path(k) for k in adb_key or ()),
                              secure=not insecure)
        console.print(device.serial)

    @task(name="list")
    @user_errors
    def emulator_list(c):
        """List the emulated devices running now, and the stopped ones whose state is kept."""
        from rich.table import Table

        from emulator.lifecycle import list_devices, stopped_states

        table = Table()
        for column in ("name", "profile", "serial", "pid", "faults", "sandbox"):
            table.add_column(column)
        for d in list_devices():
            faults = ", ".join(f"{k}={v}" for k, v in d.faults.active().items()) or "-"
            table.add_row(d.name, d.profile, d.serial, str(d.pid), faults, str(d.sandbox_root))
        console.print(table if table.row_count else "no emulated device is running")
        kept = stopped_states()
        if kept:
            console.print(f"stopped, state kept: {', '.join(kept)} (invoke emulator.reset -n NAME deletes it)",
                          markup=False)

    # invoke has no optional positional arguments (a positional one is required, so --all alone would
    # fail): the device is named with -n/--name.
    @task(name="stop", help={"name": "device to stop", "all": "stop every running device"})
    @user_errors
    def emulator_stop(c, name="", all=False):
        """Stop one emulated device (-n NAME) or all of them (--all)."""
        from deploy.errors import EdgeloopError
        from emulator.lifecycle import stop_all, stop_device

        if all:
            stopped = stop_all()
            console.print(f"stopped {', '.join(stopped)}" if stopped else "no emulated device was running")
        elif name:
            stop_device(name)
            console.print(f"stopped {name}")
        else:
            raise EdgeloopError("which device?", "give -n NAME or --all")

    @task(name="reset", help={"name": "stopped device whose state to delete", "all": "every stopped device"})
    @user_errors
    def emulator_reset(c, name="", all=False):
        """Delete a stopped emulated device's kept state (storage, log): it starts empty next time."""
        from deploy.errors import EdgeloopError
        from emulator.lifecycle import remove_stopped_states

        if not (all or name):
            raise EdgeloopError("which device?", "give -n NAME or --all")
        done = remove_stopped_states(names=None if all else [name])
        if done.running:
            console.print(f"kept the state of running {', '.join(done.running)} (stop it first: "
                          f"invoke emulator.stop -n NAME)", markup=False)
        console.print(f"deleted the state of {', '.join(done.removed)}" if done.removed else "no state deleted")

    @task(name="fault", klass=HelpfulTask, positional=["name"], iterable=["set"],
          help={"name": "device name", "set": _FAULT_HELP, "clear": "switch every fault off first"})
    @user_errors
    def emulator_fault(c, name, set=None, clear=False):
        """Change the faults of a running emulated device (in effect for everything it does next)."""
        from emulator.device import Faults, parse_fault_items
        from emulator.lifecycle import find_device

        if _asked_for_help("emulator.fault", name):
            return
        device = find_device(name)
        base = vars(Faults()) if clear else {}
        faults = device.set_faults(**{**base, **parse_fault_items(set or [])})
        console.print(", ".join(f"{k}={v}" for k, v in faults.active().items()) or "no faults")

    return Collection("emulator", emulator_start, emulator_list, emulator_stop, emulator_reset, emulator_fault)


emulator_collection = _emulator_collection()

# ---- build pipeline (convert, info, inputs, bundle, clean) -------------------------------

@task(iterable=["input_dim", "out_node"], help={
    "model": "source model: .onnx, or a TorchScript .pt/.pth (needs --input-dim and PyTorch)",
    "output": "where to write the float container (default: the cached artifact under build/)",
    "input-dim": "NAME=1,3,224,224 for a dynamic or overridden input (repeatable)",
    "out-node": "keep only the subgraph producing this node/tensor (repeatable)",
    "cache": "reuse an identical earlier conversion (default on)"})
@user_errors
def convert(c, model, output=None, input_dim=None, out_node=None, cache=True):
    """Convert a model into a float container (like snpe-onnx-to-dlc)."""
    from deploy.convert import convert as convert_model
    from deploy.convert import parse_input_dim
    from deploy.opsupport import render_unsupported

    dims = dict(parse_input_dim(text) for text in input_dim or [])
    result = convert_model(model, Path(output) if output else None, input_dims=dims,
                           out_nodes=list(out_node or []), cache=cache)
    table = render_unsupported(result.ops)
    if table is not None:
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    shapes = ", ".join(f"{t.name} {list(t.shape)}" for t in result.meta.inputs)
    console.print(f"{'cached' if result.cached else 'converted'}: {result.path} ({len(result.ops)} nodes; "
                  f"inputs {shapes})")


@task(help={"container": "a container made by convert or quantize", "json": "print JSON instead of tables"})
@user_errors
def info(c, container, json=False):
    """Show a container's layers, shapes, params, MACs, memory and encodings (like snpe-dlc-info)."""
    from deploy.info import inspect_container, render_info

    details = inspect_container(Path(container))
    if json:
        console.print_json(data=details.to_json())
        return
    for renderable in render_info(details):
        console.print(renderable)


@task(iterable=["source"], help={
    "source": ".npy file, PNG/JPEG image, or folder of them; NAME=PATH for multi-input models (repeatable)",
    "output": "folder for the .raw files and input_list.txt",
    "container": "take name, shape, layout and dtype from this container's input, and validate the result",
    "name": "input tensor name for name:=path items (default: bare paths, or the container's input)",
    "size": "image size HEIGHT,WIDTH (default: the container's, else the image's)",
    "mean": "per-channel mean, subtracted after --scale (e.g. 123.7,116.3,103.5)",
    "std": "per-channel std to divide by", "scale": "pixel multiplier applied first (e.g. 0.00392 for 1/255)",
    "layout": "NCHW or NHWC (default: the container's, else NCHW)", "gray": "read images as one channel",
    "dtype": "numpy dtype of the raw files", "check": "only validate this input list against --container"})
@user_errors
def inputs(c, source=None, output=None, container=None, name=None, size=None, mean="0", std="1", scale="1",
           layout="NCHW", gray=False, dtype="float32", check=None):
    """Make .raw inputs and an input_list.txt from .npy files and images, or validate a list."""
    from deploy.errors import EdgeloopError
    from deploy.inputs import Preprocess, group_sources, parse_number, parse_numbers, prepare_inputs, validate

    if check:
        if not container:
            raise EdgeloopError("--check needs --container", "give the container the list is for")
        console.print(f"{check}: {validate(Path(check), Path(container))} inferences match {container}")
        return
    if not source or not output:
        raise EdgeloopError("give --source (repeatable) and --output", "or --check LIST --container C")
    pre = Preprocess(size=parse_numbers(size, "size", int) if size else None, mean=parse_numbers(mean, "mean"),
                     std=parse_numbers(std, "std"), scale=parse_number(scale, "scale"), layout=layout.upper(),
                     channels=1 if gray else 3, dtype=dtype)
    prepared = prepare_inputs(group_sources(source), Path(output),
                              container=Path(container) if container else None, pre=pre, input_name=name)
    console.print(f"wrote {len(prepared.files)} raw files and {prepared.list_path}")


@task(iterable=["option"], help={
    "container": "float or quantized container (from convert or quantize)",
    "device": "device profile name (see deploy/device_profiles/) or a profile YAML file",
    "runtime": "cpu, gpu, gpu_fp16, dsp or aip", "input-list": "input_list.txt whose raw files go into the bundle",
    "pack": "runtime pack name or folder (default builtin: the emulated device)",
    "option": "pack option NAME=VALUE, e.g. perf_profile=burst, profiling_level=detailed (repeatable)",
    "sdk": "SDK root for packs that need one (default: the pack's environment variable, e.g. SNPE_ROOT)",
    "calibration-list": "inputs for the SDK's own quantizer, for a float container (snpe, qnn packs)"})
@user_errors
def bundle(c, container, device, runtime, input_list, pack="builtin", option=None, sdk=None, calibration_list=None):
    """Assemble a push bundle under build/bundles/<id>/ (reused when nothing changed)."""
    from deploy.bundle import bundle as make_bundle
    from deploy.errors import EdgeloopError
    from deploy.profiles import load_profile

    options = {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgeloopError(f"--option {item!r}: expected NAME=VALUE", "e.g. --option perf_profile=burst")
        options[key] = value
    made = make_bundle(Path(container), load_profile(device), runtime, Path(input_list), pack=pack,
                       options=options, sdk=Path(sdk) if sdk else None,
                       calibration_list=Path(calibration_list) if calibration_list else None)
    size = sum(f["size"] for f in made.manifest)
    console.print(f"bundle {made.id}: {made.path} ({len(made.manifest)} files, {size} bytes; "
                  f"pack {made.pack}, {made.profile} {made.runtime})")


@task(help={"all": "also delete reports/"})
@user_errors
def clean(c, all=False):
    """Delete edgeloop's build output (cache, containers, quantized, bundles under build/ or $EDGELOOP_BUILD)."""
    from deploy.cache import build_outputs
    from deploy.cache import clean as clean_folders
    from emulator.lifecycle import stopped_states

    removed = clean_folders([*build_outputs(), *([Path("reports")] if all else [])])
    console.print(f"removed {', '.join(map(str, removed))}" if removed else "no build output to clean", markup=False)
    kept = stopped_states()
    if kept:  # every project's deploys share them: not this project's to delete
        console.print(f"kept the state of emulated {', '.join(kept)} (shared by every project; "
                      "invoke emulator.reset --all deletes it)", markup=False, soft_wrap=True)


# ---- quantizer ----------------------------------------------------------------------------

_QUANTIZE_HELP = {
    "container": "the float container to quantize (from convert)",
    "input_list": "SNPE input_list.txt with the calibration inputs",
    "output": "where to write the quantized container (default: the build cache)",
    "param_quantizer": "weights/biases: tf (min/max), enhanced (AIMET tf_enhanced) or symmetric",
    "act_quantizer": "activations: tf, enhanced or symmetric",
    "weights_bitwidth": "4, 8 or 16",
    "act_bitwidth": "8 or 16",
    "bias_bitwidth": "8 or 32 (32: scale = input scale x weight scale)",
    "use_per_channel_quantization": "one symmetric encoding per output channel of Conv/Gemm/MatMul weights",
    "algorithms": "comma list: cle (cross-layer equalization), bc (bias correction), adaround (adaptive "
                  "rounding), seqmse (sequential MSE weight ranges)",
    "adaround_iterations": "Adam steps per layer for adaround (default 1000)",
    "override_params": "AIMET encodings JSON (0.6.1, 1.0.0 or 2.0.0): full or partial overrides, float islands",
    "pack_4_bit_weights": "store 4-bit weights two per byte (low nibble first)",
    "encodings_out": "also write the encodings as AIMET 1.0.0 JSON",
    "min_range": "smallest encoding range (SNPE 2.x: 0.0001; AIMET: 0.01)",
    "cache": "reuse a cached result for the same inputs and options (--no-cache to rebuild)",
}


def _quantize_collection() -> Collection:
    """quantize (default task) and quantize.debug, defined here so they are not also top-level tasks."""

    @task(name="quantize", default=True, help=_QUANTIZE_HELP)
    @user_errors
    def quantize_task(c, container, input_list, output=None, param_quantizer="tf", act_quantizer="tf",
                      weights_bitwidth="8", act_bitwidth="8", bias_bitwidth="32", use_per_channel_quantization=False,
                      algorithms="", override_params=None, pack_4_bit_weights=False, encodings_out=None,
                      min_range="0.0001", adaround_iterations="1000", cache=True):
        """Quantize a float container into a QDQ container with AIMET encodings; prints output SQNR and cosine."""
        # numeric defaults are strings so that invoke does not cast (and crash on) `--weights-bitwidth abc`:
        # from_mapping converts them with a one-line error
        from deploy.quantize import QuantizeOptions, quantize

        options = QuantizeOptions.from_mapping({
            "param_quantizer": param_quantizer, "act_quantizer": act_quantizer,
            "weights_bitwidth": weights_bitwidth, "act_bitwidth": act_bitwidth, "bias_bitwidth": bias_bitwidth,
            "use_per_channel_quantization": use_per_channel_quantization, "algorithms": algorithms,
            "override_params": override_params, "pack_4_bit_weights": pack_4_bit_weights,
            "min_range": min_range, "adaround_iterations": adaround_iterations}, "command line")
        result = quantize(container, input_list, output, options, encodings_out=encodings_out, cache=cache)
        console.print(f"{result.path}{' (cached)' if result.cached else ''}: output SQNR {result.sqnr_db:.2f} dB, "
                      f"cosine {result.cosine:.6f}")
        for note in result.notes:
            console.print(f"note: {note}")
        if encodings_out:
            console.print(f"encodings: {encodings_out}")

    @task(name="debug", help={
        "container": "the float container", "quantized": "the quantized container made from it",
        "input_list": "SNPE input_list.txt; the first --inputs lines are used",
        "inputs": "how many inputs to run (default 8)",
        "target_sqnr": "promote the worst layers until the output SQNR (dB) reaches this",
        "promote": "what promotion means: 16 (16-bit activations and weights) or float",
        "worst": "without a target: how many of the worst layers the overrides file keeps (default 3)",
        "overrides_out": "write the promotion overrides (AIMET 1.0.0) here, for --override-params",
        "device": "device profile the container is for: only promotions its runtime runs are proposed",
        "runtime": "with --device: the runtime (default: the device's dsp, or aip)",
        "json": "print the report as JSON"})
    @user_errors
    def debug_task(c, container, quantized, input_list, inputs="8", target_sqnr=None, promote="16", worst="3",
                   overrides_out=None, device=None, runtime=None, json=False):
        """Per-layer SQNR of a quantized container against float (cumulative and isolated); rank the culprits."""
        import json as json_module

        from deploy.errors import CheckFailed
        from deploy.profiles import load_profile
        from deploy.quantize.debug import debug

        target_sqnr = number(target_sqnr, "--target-sqnr") if target_sqnr is not None else None
        report = debug(container, quantized, input_list, inputs=number(inputs, "--inputs", int),
                       target_sqnr=target_sqnr, promote=str(promote), worst=number(worst, "--worst", int),
                       overrides_out=overrides_out,
                       device=load_profile(device) if device else None, runtime=runtime)
        if json:
            console.print_json(json_module.dumps(report.to_json()))
        else:
            _print_debug_report(report, target_sqnr, promote, overrides_out)
        if report.target_met is False:
            reached = report.final_sqnr_db if report.final_sqnr_db is not None else report.output_sqnr_db
            raise CheckFailed(f"target {target_sqnr:g} dB not met: {reached:.2f} dB with every layer at {promote}",
                              "try --promote float, or another quantizer option (docs/quantization.md)")

    def _print_debug_report(report, target_sqnr, promote, overrides_out) -> None:
        from rich.table import Table

        rank = {layer.tensor: i for i, layer in enumerate(report.ranking, 1)}
        table = Table(title=f"output SQNR {report.output_sqnr_db:.2f} dB")
        for column in ("rank", "layer output", "op", "cumulative SQNR dB", "isolated SQNR dB"):
            table.add_column(column, justify="right" if "SQNR" in column or column == "rank" else "left")
        for layer in report.layers:
            mark = "[red]" if layer.tensor in report.promoted else ""
            table.add_row(str(rank[layer.tensor]), f"{mark}{layer.tensor}", layer.op_type,
                          "-" if layer.cumulative_sqnr_db is None else f"{layer.cumulative_sqnr_db:.2f}",
                          f"{layer.isolated_sqnr_db:.2f}")
        console.print(table)
        for note in report.notes:
            console.print(f"note: {note}")
        if report.target_met is not None:
            verdict = "met" if report.target_met else "not met"
            final = report.final_sqnr_db if report.final_sqnr_db is not None else report.output_sqnr_db
            size = report.final_size_bytes or report.size_bytes
            console.print(f"target {target_sqnr:g} dB {verdict}: {final:.2f} dB after promoting "
                          f"{len(report.promoted)} layer(s) to {promote}; parameters {report.size_bytes} -> "
                          f"{size} bytes")
        elif report.final_sqnr_db is not None:
            console.print(f"with these overrides quantize gives {report.final_sqnr_db:.2f} dB on the "
                          f"{report.calibration_inputs} inputs of the list")
        console.print(f"worst layers: {', '.join(report.promoted) or '-'}"
                      + (f"; overrides: {overrides_out}" if overrides_out else ""))

    return Collection("quantize", quantize_task, debug_task)


quantize_collection = _quantize_collection()

# ---- deploy -------------------------------------------------------------------------------

_DIFF_HELP = {
    "latency_pct": "smallest growth of a job's median latency in % that can be a regression (default 10)",
    "alpha": "significance level of the one-sided Mann-Whitney U test over the runs (default 0.01)",
    "cosine_margin": "allowed drop of an output's cosine vs the baseline (default 0.001)",
    "sqnr_margin": "allowed drop of an output's SQNR in dB vs the baseline (default 1)",
    "top1_margin": "allowed drop of top-1 agreement/accuracy vs the baseline (default 0.01)",
}


def _diff_options(latency_pct, alpha, cosine_margin, sqnr_margin, top1_margin):
    """The options given on the command line; DiffOptions holds the defaults."""
    from harness.report.diff import DiffOptions

    given = {"latency_pct": ("--latency-pct", latency_pct), "alpha": ("--alpha", alpha),
             "cosine_margin": ("--cosine-margin", cosine_margin), "sqnr_margin_db": ("--sqnr-margin", sqnr_margin),
             "top1_margin": ("--top1-margin", top1_margin)}
    return DiffOptions(**{name: number(value, option) for name, (option, value) in given.items() if value is not None})


def _print_findings(report) -> None:
    from harness.report.terminal import diff_verdict, findings_table

    table = findings_table(report)
    if table is not None:
        console.print(table)
    console.print(diff_verdict(report))


_HISTORY_HELP = ("the results history: an SQLite file or a postgresql:// URL; `off` records nothing "
                 "(default $EDGELOOP_HISTORY, else .edgeloop/history.sqlite)")
_RUN_HELP = {
    "cooldown_temp": "before each measured run, wait until the device is below this temperature in °C "
                     "(its hottest CPU thermal zone; up to 300 s)",
    "cpu_mask": "run net-run on these cores only: taskset's hexadecimal mask, e.g. f0 for cores 4-7",
}
_BASELINE_HELP = ("compare with a previous report.json or farm.json, or with history[:N]: the last N passing runs "
                  "of each job in the history (default 5)")


@task(iterable=["model", "runtime"], help={
    "device": "device profile to deploy to (pixel, pixel4, galaxy-s23, generic-arm64 or a profile YAML; "
              "default: the deployment file's one `devices` entry)",
    "config": "deployment file (default: ./edgeloop.yaml)",
    "model": "only this model of the deployment file (repeatable)",
    "runtime": "cpu, gpu, gpu_fp16, dsp or aip (repeatable; default: the file's runtimes the profile has)",
    "serial": "adb serial of the device when several match the profile",
    "adb": "adb server HOST:PORT (default 127.0.0.1:5037 or $ANDROID_ADB_SERVER_PORT; started if local)",
    "emulate": "start an emulated device of the profile for this deploy, and stop it afterwards",
    "runs": "measured runs for latency (a warm-up run is added when more than 1; default: the file's run.runs, "
            "else 1)",
    "report-dir": "where the reports/<timestamp>-<device>/ folders go (default: reports)",
    "timeout": "seconds a run may go without finishing before it is stopped (default: the file's run.timeout_s, "
               "else 600)",
    "lease-timeout": "seconds to wait while another deploy or farm run holds the device (default 600)",
    "history": _HISTORY_HELP, "baseline": _BASELINE_HELP, **_DIFF_HELP, **_RUN_HELP})
@user_errors
def deploy(c, device=None, config=None, model=None, runtime=None, serial=None, adb=None, emulate=False, runs=None,
           report_dir="reports", timeout=None, lease_timeout="600", history=None, baseline=None, latency_pct=None,
           alpha=None, cosine_margin=None, sqnr_margin=None, top1_margin=None, cooldown_temp=None, cpu_mask=None):
    """Convert, quantize, bundle, push, run, pull, compare and report on a phone or the emulated device."""
    from harness.history.baseline import parse_baseline
    from harness.pipeline import deploy as deploy_loop
    from harness.report.terminal import failure_lines, summary_table
    from harness.settings import deploy_settings

    options = _diff_options(latency_pct, alpha, cosine_margin, sqnr_margin, top1_margin)  # before any file
    wait_s = number(lease_timeout, "--lease-timeout", low=0)
    config_path = Path(config) if config else None
    settings = deploy_settings(config_path, runs=runs, timeout=timeout, cooldown_temp=cooldown_temp,
                               cpu_mask=cpu_mask, history=history)
    base = parse_baseline(baseline, settings.history) if baseline else None
    outcome = deploy_loop(device, config_path=config_path, models=list(model or []) or None,
                          runtimes=list(runtime or []) or None, serial=serial, adb=adb, emulate=emulate,
                          runs=settings.runs, timeout=settings.timeout_s, report_root=Path(report_dir),
                          console=err_console, lease_timeout=wait_s,
                          history=settings.history, baseline=base, diff_options=options, options=settings.options)
    console.print(summary_table(outcome.results, outcome.device))
    for line in failure_lines(outcome.results):
        console.print(line, style="red", markup=False, soft_wrap=True)
    if outcome.unwritten is None:  # otherwise check() says why there are none
        console.print(f"reports: {outcome.reports.folder} (report.html, report.json, junit.xml)", soft_wrap=True,
                      markup=False)
    if outcome.baseline is not None:
        _print_findings(outcome.baseline)
    outcome.check()


# ---- farm and reports ---------------------------------------------------------------------

def _farm_collections() -> tuple[Collection, Collection]:
    """farm.* and report.* (defined here so they are not also top-level tasks)."""

    @task(name="run", help={"inventory": "farm.yaml: adb servers and device labels",
                            "matrix": "matrix.yaml: models × profiles × runtimes",
                            "baseline": _BASELINE_HELP, "history": _HISTORY_HELP,
                            "report_dir": "where the farm report goes (default reports/<time>-farm)", **_DIFF_HELP,
                            **{k: v + " (default: the matrix's)" for k, v in _RUN_HELP.items()}})
    @user_errors
    def farm_run(c, inventory, matrix, baseline=None, report_dir=None, history=None, latency_pct=None, alpha=None,
                 cosine_margin=None, sqnr_margin=None, top1_margin=None, cooldown_temp=None, cpu_mask=None):
        """Run a regression matrix on every matching device of a farm; exit 1 on any failure or regression."""
        from rich.progress import Progress

        from harness.farm import farm_run as run
        from harness.farm import load_matrix
        from harness.history.baseline import parse_baseline
        from harness.report.terminal import discovery_lines, event_line, farm_table
        from harness.settings import history_location

        location = history_location(history, load_matrix(Path(matrix)).config)
        base = parse_baseline(baseline, location) if baseline else None
        with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
            bar = progress.add_task("farm jobs", total=None)
            result = run(Path(inventory), Path(matrix), baseline=base,
                         out_dir=Path(report_dir) if report_dir else None, history=location,
                         run_options={"cooldown_c": cooldown_temp, "cpu_mask": cpu_mask},
                         diff_options=_diff_options(latency_pct, alpha, cosine_margin, sqnr_margin, top1_margin),
                         on_event=lambda e: progress.console.print(event_line(e)),
                         on_finish=lambda o, done, total: progress.update(bar, completed=done, total=total,
                                                                          description=f"farm jobs ({o.task.id})"))
        console.print(farm_table(result))
        for line in discovery_lines(result.discovery):
            console.print(line)
        if result.baseline:
            _print_findings(result.baseline)
        if result.unwritten is None:  # otherwise check() says why there is none
            console.print(f"report: {result.paths.html}", markup=False)
        if result.history_note:
            console.print(result.history_note, markup=False, soft_wrap=True)
        result.check()
        console.print("[green]farm run passed[/]")

    @task(name="diff", klass=HelpfulTask, positional=["base", "new"],
          help={"base": "baseline report.json or farm.json, or history[:N] (the last N passing runs of each job in "
                        "the history, recorded before NEW; default 5)", "new": "new report", "history": _HISTORY_HELP,
                **_DIFF_HELP})
    @user_errors
    def report_diff(c, base, new, history=None, latency_pct=None, alpha=None, cosine_margin=None,
                    sqnr_margin=None, top1_margin=None):
        """Compare a report with a baseline; exit 1 on a regression."""
        if _asked_for_help("report.diff", base, new):
            return
        from deploy.errors import CheckFailed
        from harness.history.baseline import diff_report, parse_baseline
        from harness.settings import history_location

        options = _diff_options(latency_pct, alpha, cosine_margin, sqnr_margin, top1_margin)  # before any file
        report = diff_report(parse_baseline(base, history_location(history)), Path(new), options)
        _print_findings(report)
        if report.regressed:
            raise CheckFailed(f"{len(report.regressions)} regression(s) against {base}")

    @task(name="devices", help={"inventory": "farm.yaml: adb servers and device labels"})
    @user_errors
    def farm_devices(c, inventory):
        """List the devices a farm's adb servers report, with the profiles they match."""
        from harness.inventory import discover, load_inventory
        from harness.report.terminal import devices_table, discovery_lines

        found = discover(load_inventory(Path(inventory)))
        console.print(devices_table(found))
        for line in discovery_lines(found):
            console.print(line)

    return Collection("farm", farm_run, farm_devices), Collection("report", report_diff)


farm_collection, report_collection = _farm_collections()


@task
@user_errors
def profiles(c):
    """List the device profiles deploy, farm.run and the emulator know, and where each comes from."""
    from rich.table import Table

    from deploy.profiles import available_profiles, load_profile

    table = Table()
    for column in ("profile", "device", "abi", "runtimes", "hexagon", "file"):
        table.add_column(column)
    for name, path in sorted(available_profiles().items()):
        p = load_profile(name)
        hexagon = f"{p.hexagon.arch} {p.hexagon.kind}" if p.hexagon else "-"
        table.add_row(name, p.description, p.abi, ", ".join(p.runtimes), hexagon, str(path))
    console.print(table)


def _history_collection() -> Collection:
    """history (its default task shows the runs) and history.import (defined here so they are not also
    top-level tasks)."""

    @task(name="show", help={
        "model": "only this model", "device": "only this device profile (as deploy's --device) or adb serial",
        "runtime": "only this runtime",
        "last": "the newest N jobs of each model × device × runtime (default 20; 0: all)",
        "since": "only runs since a UTC date or time (2025-01-31, 2025-01-31T12:00) or an age (7d, 12h)",
        "json": "print the jobs as JSON",
        "html": "write a self-contained trend page (latency, accuracy, memory) here, not the table",
        "history": _HISTORY_HELP})
    @user_errors
    def history_show(c, model=None, device=None, runtime=None, last="20", since=None, json=False, html=None,
                     history=None):
        """Show the recorded deploy and farm runs (a table, or --json), or write their trend page (--html)."""
        import json as json_module

        from deploy.errors import EdgeloopError
        from harness.history.location import describe
        from harness.history.query import Filters, parse_since, select_jobs
        from harness.history.table import history_table
        from harness.history.trend import write_trend
        from harness.settings import required_history

        location = required_history(history)
        newest = number(last, "--last", int)
        if newest < 0:
            raise EdgeloopError(f"--last must be 0 (all) or more, got {newest}")
        records = select_jobs(location, Filters(model=model, device=device, runtime=runtime, last=newest or None,
                                                since=parse_since(since) if since else None))
        if json:
            console.print_json(json_module.dumps([r.to_json() for r in records]))
        elif not html:
            console.print(history_table(records, describe(location)))
        if html:
            page = write_trend(records, Path(html), where=describe(location))
            (err_console if json else console).print(f"trend page: {page} ({len(records)} jobs)", markup=False)

    @task(name="import", iterable=["reports"], help={
        "reports": "a report.json or farm.json, or a folder searched for them (repeatable; or give them as words "
                   "after the task: `edgeloop history import reports/`)",
        "history": _HISTORY_HELP})
    @user_errors
    def history_import(c, reports=None, history=None):
        """Record existing reports (report.json or farm.json, any schema version) in the history, each run once."""
        from deploy.errors import EdgeloopError
        from harness.history.location import describe
        from harness.history.record import import_reports
        from harness.settings import required_history

        if not reports:
            raise EdgeloopError("history import: no report given", "edgeloop history import REPORT_DIR_OR_FILE...")
        location = required_history(history)
        for imported in import_reports(location, [Path(r) for r in reports]):
            said = f"recorded as run {imported.run_id}" if imported.new else f"already recorded (run {imported.run_id})"
            console.print(f"{imported.path}: {imported.kind} run {said} in {describe(location)}", markup=False,
                          soft_wrap=True)

    history_import.body.variadic = "reports"  # harness.console.VARIADIC: `history import A B` gives A and B
    collection = Collection("history")
    collection.add_task(history_show, default=True)
    collection.add_task(history_import)
    return collection


history_collection = _history_collection()


@task
@user_errors
def version(c):
    """Print edgeloop's version."""
    console.print(f"edgeloop {TOOL_VERSION}")


ns = Collection.from_module(__import__(__name__))
ns.add_collection(farm_collection)
ns.add_collection(emulator_collection)
ns.add_collection(report_collection)
ns.add_collection(history_collection)
ns.add_collection(quantize_collection)


def main() -> None:
    """Entry point of the `edgeloop` console command."""
    EdgeloopProgram(namespace=ns, name="edgeloop", binary="edgeloop", version=TOOL_VERSION).run()
