"""Reports: report.json follows its schema, junit.xml counts agree, report.html renders with its plots."""

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from harness.compare import default_limits, error_histogram, judge, measure
from harness.report import new_report_dir, write_reports
from harness.report.diff import REGRESSION, STILL_FAILING, DiffReport, Finding
from harness.report.document import schema
from harness.report.results import ERROR, FAILED, PASSED, DeviceMeasures, JobResult, LatencyStats, OutputResult


def _output(name: str, noise: float) -> OutputResult:
    rng = np.random.default_rng(1)
    ref = [rng.normal(size=(1, 10)) for _ in range(3)]
    dev = [r + rng.normal(scale=noise, size=r.shape) for r in ref]
    metrics = measure(ref, dev, labels=[0, 1, 2])
    limits = default_limits("cpu")
    return OutputResult(name, (1, 10), metrics, limits, judge(metrics, limits), error_histogram(ref, dev))


def sample_results() -> list[JobResult]:
    latency = LatencyStats.from_timings(12.5, [1.0, 1.2, 0.9, 3.0],
                                        {"conv1": [0.4, 0.5, 0.45], "fc<&>": [0.1, 0.1, 0.2]})
    sha = "ab" * 32
    passed = JobResult("digits", "cpu", "pixel", "127.0.0.1:40001", PASSED, None, sha, sha, "float", "b1",
                       outputs=[_output("probs", 1e-6)], latency=latency, runs=2, bytes_pushed=1234,
                       phases_s={"push": 0.1, "run": 0.2}, run_dir="runs/x")
    unmeasured = JobResult("digits", "gpu_fp16", "pixel", "127.0.0.1:40001", PASSED, None, sha, sha, "float", "b3",
                           outputs=[_output("probs", 1e-6)], runs=1,
                           warnings=["no latency figures: no SNPE SDK"])
    failed = JobResult("digits", "gpu", "pixel", "127.0.0.1:40001", FAILED, "probs: cosine 0.5 < 0.995", sha, sha,
                       "float", "b2", outputs=[_output("probs", 2.0)], latency=latency, runs=1)
    error = JobResult("digits", "dsp", "pixel", "", ERROR, "profile 'pixel' has no dsp runtime")
    return [passed, failed, error, unmeasured]


@pytest.fixture()
def written(tmp_path: Path):
    results = sample_results()
    assert results[0].passed and not results[1].passed and not results[1].outputs[0].verdict.passed
    return write_reports(results, tmp_path / "r", devices={"127.0.0.1:40001": {"ro.product.model": "Pixel 7"}},
                         title="deploy digits on pixel")


def test_report_json_validates_and_counts(written) -> None:
    doc = json.loads(written.json.read_text())
    jsonschema.Draft202012Validator(schema()).validate(doc)
    assert doc["summary"] == {"total": 4, "passed": 2, "failed": 1, "errors": 1}
    first = doc["results"][0]
    assert first["latency"]["median_ms"] == pytest.approx(1.1)
    assert first["latency"]["p90_ms"] == pytest.approx(np.percentile([1.0, 1.2, 0.9, 3.0], 90))
    assert [x["name"] for x in first["latency"]["slowest_layers"]] == ["conv1", "fc<&>"]
    assert doc["results"][2]["outputs"] == [] and doc["results"][2]["failure"].startswith("profile")
    assert doc["results"][3]["latency"] is None and doc["results"][3]["warnings"][0].startswith("no latency")
    assert not list(written.folder.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_schema_rejects_a_pass_without_outputs_or_with_a_failure() -> None:
    doc_result = sample_results()[0].to_json()
    validator = jsonschema.Draft202012Validator({"$defs": schema()["$defs"], "$ref": "#/$defs/result"})
    validator.validate(doc_result)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**doc_result, "outputs": []})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**doc_result, "failure": "x"})


def test_junit_has_one_case_per_job(written) -> None:
    root = ET.parse(written.junit).getroot()
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("errors") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["cpu", "gpu", "dsp", "gpu_fp16"]
    assert "warning: no latency figures" in cases[3].findtext("system-out") and cases[3].find("properties") is None
    assert cases[1].find("failure") is not None and cases[2].find("error").get("message").startswith("profile")


def test_junit_and_html_carry_the_baseline_findings(tmp_path: Path) -> None:
    """A passed job that regressed against the baseline is a failure in junit.xml, a job the baseline has and
    the new run lacks a failing case of its own, and every finding a property of its case."""
    results = sample_results()
    results[0] = replace(results[0], measures=DeviceMeasures([31.25], [33.5], [40960], [4], [2.0], {"cpu": 31.25},
                                                             {"cpu": 33.5}, 20.0),
                         run_options={"cpu_mask": "f0", "perf_profile": "burst", "cooldown_c": 32.0})
    findings = [Finding("digits/pixel/cpu", "latency", "median latency 1.000 → 1.500 ms, +50.0%", REGRESSION),
                Finding("digits/pixel/gpu", "status", "still failing: failed: probs: cosine 0.5", STILL_FAILING),
                Finding("digits/pixel/aip", "missing", "in the baseline but not in the new report", REGRESSION)]
    diff = DiffReport("base/report.json", "new/report.json", 3, findings)
    paths = write_reports(results, tmp_path / "r", devices={}, title="t", baseline=diff)  # validated: schema 4
    suite = ET.parse(paths.junit).getroot().find("testsuite")
    assert suite.get("tests") == "5" and suite.get("failures") == "3" and suite.get("errors") == "1"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["baseline"] == "base/report.json" and props["baseline.regressions"] == "2"
    cpu, gpu, _, _, aip = suite.findall("testcase")
    failure = cpu.find("failure")
    assert failure.get("type") == "baseline regression" and "+50.0%" in failure.get("message")
    cpu_props = {p.get("name"): p.get("value") for p in cpu.find("properties")}
    assert cpu_props["baseline.latency"].startswith("regression: median latency")
    assert {k: cpu_props[k] for k in ("peak_memory_kb", "temperature_before_c", "temperature_after_c", "cooldown_s",
                                      "cpu_mask", "perf_profile", "cooldown_c")} == {
        "peak_memory_kb": "40960", "temperature_before_c": "31.2", "temperature_after_c": "33.5",
        "cooldown_s": "2.0", "cpu_mask": "f0", "perf_profile": "burst", "cooldown_c": "32.0"}
    assert len(gpu.findall("failure")) == 1  # its own; still failing is no second one
    assert gpu.find("properties/property").get("value").startswith("still failing: ")
    assert (aip.get("classname"), aip.get("name")) == ("digits.pixel", "aip") and aip.find("failure") is not None
    page = paths.html.read_text()
    assert "Against the baseline" in page and "2 regression(s)" in page and "+50.0%" in page


def test_report_dir_name_is_safe() -> None:
    d = new_report_dir(Path("reports"), "127.0.0.1:5555 / pixel")
    assert d.parent == Path("reports") and d.name.endswith("-127.0.0.1_5555_pixel")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is installed by scripts/setup --test")
def test_html_renders_in_headless_chromium_with_plots(written, tmp_path: Path) -> None:
    html = written.html.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained: no CDN
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
         "--dump-dom", written.html.as_uri()],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert dom.count('class="plot latency-plot"') == 2
    assert dom.count('class="plot layer-plot"') == 2
    assert dom.count('class="plot error-plot"') == 3  # one per output of the jobs that ran
    assert 'class="warning">warning: no latency figures' in dom
    assert "fc&lt;&amp;&gt;" in dom  # layer names are escaped, not injected
    assert "profile 'pixel' has no dsp runtime" in dom


def test_html_summary_line_counts_in_words(written, tmp_path: Path) -> None:
    def summary(html: Path) -> str:
        line = re.search(r'<p id="summary">(.*?)</p>', html.read_text(), re.S)
        assert line, html
        return " ".join(re.sub(r"<[^>]+>", "", line[1]).split())

    assert summary(written.html) == "4 jobs: 2 passed, 1 failed, 1 error"
    one = write_reports(sample_results()[:1], tmp_path / "one", devices={}, title="one job")
    assert summary(one.html) == "1 job: 1 passed, 0 failed, 0 errors"


def test_terminal_summary_and_failure_lines() -> None:
    from rich.console import Console

    from harness.report.terminal import failure_lines, human_size, summary_table

    results = sample_results()
    console = Console(record=True, width=200)
    console.print(summary_table(results, "127.0.0.1:40001"))
    text = console.export_text()
    assert "127.0.0.1:40001" in text and text.count("digits") == 4 and "1234 B" in text
    assert failure_lines(results) == ["digits/gpu: failed: probs: cosine 0.5 < 0.995",
                                      "digits/dsp: error: profile 'pixel' has no dsp runtime",
                                      "digits/gpu_fp16: warning: no latency figures: no SNPE SDK"]
    assert human_size(2_500_000) == "2.50 MB"


def test_terminal_shows_device_and_exception_text_as_written() -> None:
    """Brackets in a model name, a device's message or an exception are text, not rich markup."""
    from rich.console import Console

    from harness.inventory import Discovery
    from harness.report.terminal import discovery_lines, event_line, summary_table

    odd = JobResult("m[/x]", "cpu", "pixel", "127.0.0.1:40001", ERROR, "[Errno 2] no [bold]such[/] file")
    found = Discovery(devices=[], unreachable={"10.0.0.9:5037": "[Errno 111] Connection refused"},
                      unmatched=["x@h:1 (getprop failed: [/foo])"])
    console = Console(record=True, width=200)
    console.print(summary_table([odd], "serial[/y]"))
    for line in [*discovery_lines(found),
                 event_line({"kind": "retry", "device": "d[/z]", "detail": "lost device ([/w])"})]:
        console.print(line)
    text = console.export_text()
    for shown in ("m[/x]", "serial[/y]", "adb server 10.0.0.9:5037 unreachable: [Errno 111] Connection refused",
                  "not used: x@h:1 (getprop failed: [/foo])", "retry d[/z] lost device ([/w])"):
        assert shown in text


def test_junit_stays_parseable_with_control_characters(tmp_path: Path) -> None:
    """A tool's stderr line with ANSI colours ends up in a failure: XML 1.0 cannot hold ESC."""
    coloured = JobResult("digits", "cpu", "pixel", "", ERROR, "net-run failed with exit code 1: \x1b[31mboom\x1b[0m")
    paths = write_reports([coloured], tmp_path / "r", devices={}, title="t")
    case = ET.parse(paths.junit).getroot().find("testsuite/testcase")
    assert case.find("error").get("message") == "net-run failed with exit code 1: \ufffd[31mboom\ufffd[0m"
