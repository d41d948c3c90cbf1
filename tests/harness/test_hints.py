"""The next step a failed accuracy check names: what to run or change, with snippets that really load."""

import json
import re
import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from deploy.config import load_config
from harness.compare import Limits, Metrics, default_limits, judge
from harness.pipeline import deploy
from harness.report import write_reports
from harness.report.hints import next_steps
from harness.report.results import ERROR, FAILED, PASSED, JobResult, OutputResult
from harness.report.terminal import failure_lines
from tests.harness.conftest import CONFIG, ROOT

DEBUG = (Path("build/containers/digits.onnx"), Path("build/quantized/digits q.onnx"), Path("inputs/list.txt"))


def _result(runtime: str, *, cosine: float, sqnr_db: float = 30.0, top1: float | None = 1.0,
            limits: Limits | None = None, per_channel: bool = False) -> JobResult:
    metrics = Metrics(inferences=3, cosine=cosine, cosine_mean=cosine, sqnr_db=sqnr_db, max_abs=0.2, mean_abs=0.05,
                      rel_l2=0.1, top1_agreement=top1)
    limits = limits or default_limits(runtime)
    verdict = judge(metrics, limits)
    encodings = {"use_per_channel_quantization": per_channel} if runtime in ("dsp", "aip") else None
    return JobResult("digits", runtime, "pixel4", "emu", PASSED if verdict.passed else FAILED,
                     None if verdict.passed else "; ".join(verdict.reasons), encodings=encodings,
                     outputs=[OutputResult("logits", (1, 10), metrics, limits, verdict)])


def test_a_quantized_classifier_that_agrees_on_every_class_is_told_the_debugger_per_channel_and_a_limit() -> None:
    failed = _result("dsp", cosine=0.9537)
    assert failed.status == FAILED  # 0.9537 < the dsp default 0.98
    debug_line, change_line = next_steps(failed, DEBUG)
    command = re.search(r"`(invoke quantize\.debug [^`]+)`", debug_line)
    assert command, debug_line
    # quoted: the path has a space
    assert shlex.split(command[1])[2:] == ["--container", str(DEBUG[0]), "--quantized", str(DEBUG[1]),
                                           "--input-list", str(DEBUG[2]), "--device", "pixel4", "--runtime", "dsp"]
    assert "`use_per_channel_quantization: true` under models.digits.quantization" in change_line
    assert "top-1 agreement is 100 %" in change_line
    assert "`dsp: {min_cosine: 0.95}` under models.digits.thresholds" in change_line


def test_per_channel_already_on_suggests_cle_and_bias_correction_instead() -> None:
    (_, change_line) = next_steps(_result("aip", cosine=0.9, per_channel=True), DEBUG)
    assert "per_channel" not in change_line
    assert "`algorithms: [cle, bc]` under models.digits.quantization" in change_line
    assert "`aip: {min_cosine: 0.9}`" in change_line


def test_no_limit_is_offered_when_the_classes_disagree() -> None:
    limits = Limits(min_cosine=0.98, min_top1_agreement=0.9)
    steps = next_steps(_result("dsp", cosine=0.95, top1=0.8, limits=limits), DEBUG)
    assert len(steps) == 2 and "thresholds" not in " ".join(steps) and "quantize.debug" in steps[0]
    assert "--device pixel4 --runtime dsp`" in steps[0]  # it proposes only what that DSP runs


@pytest.mark.parametrize(("cosine", "limit"), [(0.9537, "0.95"), (0.999938, "0.99993"), (0.9, "0.9")])
def test_a_cosine_limit_keeps_the_digits_that_matter(cosine: float, limit: str) -> None:
    """Rounded by its distance from 1: a float-like 0.999938 missing 0.99999 is not offered 0.99."""
    (_, change_line) = next_steps(_result("dsp", cosine=cosine, limits=Limits(min_cosine=0.99999)), DEBUG)
    assert f"`dsp: {{min_cosine: {limit}}}`" in change_line


def test_missed_sqnr_and_max_abs_limits_are_offered_as_what_was_reached() -> None:
    limits = Limits(min_cosine=0.9, min_sqnr_db=40.0, max_abs=0.1)
    (_, change_line) = next_steps(_result("dsp", cosine=0.99, sqnr_db=31.77, limits=limits), DEBUG)
    assert "`dsp: {min_sqnr_db: 31, max_abs: 0.2}`" in change_line  # max abs error was 0.2


def test_gpu_fp16_is_pointed_at_the_fp32_gpu_runtime_or_an_fp16_limit() -> None:
    limits = Limits(min_cosine=0.995, min_sqnr_db=120.0)
    (line,) = next_steps(_result("gpu_fp16", cosine=0.9999, sqnr_db=72.4, limits=limits), DEBUG)
    assert "--runtime gpu" in line and "`gpu_fp16: {min_sqnr_db: 72}` under models.digits.thresholds" in line


@pytest.mark.parametrize("result", [
    _result("dsp", cosine=0.999),  # passed
    _result("cpu", cosine=0.5),  # a float runtime that misses: not a quantization matter
    JobResult("digits", "dsp", "pixel4", "", ERROR, "net-run failed with exit code 1"),
], ids=["passed", "cpu", "error"])
def test_nothing_to_suggest(result: JobResult) -> None:
    assert next_steps(result, DEBUG) == []


def test_the_terminal_prints_the_steps_under_the_failure() -> None:
    failed = _result("dsp", cosine=0.9537)
    failed.hints = next_steps(failed, DEBUG)
    lines = failure_lines([failed])
    assert lines[0] == "digits/dsp: failed: cosine 0.953700 < 0.98"
    assert lines[1:] == [f"digits/dsp: next: {step}" for step in failed.hints]


def test_every_report_carries_the_steps(tmp_path: Path) -> None:
    failed = _result("dsp", cosine=0.9537)
    failed.hints = next_steps(failed, DEBUG)
    paths = write_reports([failed], tmp_path, devices={}, title="t")
    assert json.loads(paths.json.read_text())["results"][0]["hints"] == failed.hints
    html = paths.html.read_text()
    assert html.count('<p class="hint">next: ') == 2 and "quantize.debug" in html
    out = ET.parse(paths.junit).getroot().findtext("testsuite/testcase/system-out")
    assert [line for line in out.splitlines() if line.startswith("next: ")] == [f"next: {h}" for h in failed.hints]


def _snippet(step: str, under: str) -> str:
    found = re.search(rf"`([^`]+)` under models\.digits\.{under}", step)
    assert found, step
    return found[1]


def test_the_snippets_are_keys_the_deployment_file_takes(tmp_path: Path) -> None:
    """Pasted where the hint says, the suggested lines load and give the limit and option suggested."""
    (_, change_line) = next_steps(_result("dsp", cosine=0.9537), DEBUG)
    threshold, option = _snippet(change_line, "thresholds"), _snippet(change_line, "quantization")
    assert yaml.safe_load(threshold) == {"dsp": {"min_cosine": 0.95}}
    text = CONFIG.read_text().replace("examples/", f"{ROOT}/examples/")
    text = text.replace("    thresholds:\n", f"    thresholds:\n      {threshold}\n")
    text = text.replace("    quantization:\n", f"    quantization:\n      {option}\n")
    config = tmp_path / "edgeloop.yaml"
    config.write_text(text)
    model = load_config(config).models["digits"]
    assert model.thresholds.limits("dsp")["min_cosine"] == 0.95
    assert model.quantization.use_per_channel_quantization is True


@pytest.mark.e2e
def test_a_failed_dsp_deploy_names_a_debugger_command_that_runs_and_a_limit_that_passes(
        adb_server, deploy_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from tasks import main

    strict = tmp_path / "strict"
    strict.mkdir()
    text = CONFIG.read_text().replace("examples/", f"{ROOT}/examples/")
    tight = "    thresholds:\n      dsp: {min_cosine: 0.99999}\n"  # the emulated dsp reaches about 0.99994
    (strict / "edgeloop.yaml").write_text(text.replace("    thresholds:\n", tight))
    adb = f"127.0.0.1:{adb_server.port}"
    monkeypatch.setattr(sys, "argv", ["edgeloop", "deploy", "--device", "pixel4", "--emulate", "--runtime", "dsp",
                                      "--config", str(strict / "edgeloop.yaml"), "--adb", adb,
                                      "--report-dir", str(tmp_path / "reports")])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr().out
    assert exited.value.code == 1, out
    prefix = "digits/dsp: next: "
    steps = [line.removeprefix(prefix) for line in out.splitlines() if line.startswith(prefix)]
    assert len(steps) == 2, out
    (folder,) = (tmp_path / "reports").iterdir()
    (result,) = json.loads((folder / "report.json").read_text())["results"]
    assert result["status"] == FAILED and result["hints"] == steps

    command = re.search(r"`invoke (quantize\.debug [^`]+)`", steps[0])
    assert command, steps[0]
    monkeypatch.setattr(sys, "argv", ["edgeloop", *shlex.split(command[1]), "--json"])
    main()  # the command as printed runs (a failure would exit)
    assert json.loads(capsys.readouterr().out)

    threshold = _snippet(steps[1], "thresholds")  # the task's limit, pasted where the hint says
    (tmp_path / "fitting").mkdir()
    (tmp_path / "fitting" / "edgeloop.yaml").write_text(text.replace("    thresholds:\n",
                                                                     f"    thresholds:\n      {threshold}\n"))
    again = deploy("pixel4", config_path=tmp_path / "fitting" / "edgeloop.yaml", runtimes=["dsp"], adb=adb,
                   emulate=True, report_root=tmp_path / "again")
    assert again.passed and again.results[0].hints == []
