"""Latencies of the emulated device are the host's CPU running onnxruntime, not a phone: every report says so."""

import copy
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from harness.report import write_reports
from harness.report.diff import DiffOptions, diff_reports
from harness.report.document import SCHEMA_VERSION, schema
from harness.report.results import DEVICE, ERROR, HOST, HOST_TIMING, JobResult, LatencyStats
from harness.report.terminal import summary_table
from tests.harness.conftest import CONFIG
from tests.harness.test_report import sample_results


def _results(source: str | None) -> list[JobResult]:
    results = sample_results()
    for r in results:
        r.timing_source = source if r.device else None  # the dsp job reached no device
    return results


@pytest.fixture(params=[HOST, DEVICE])
def written(request: pytest.FixtureRequest, tmp_path: Path):
    return request.param, write_reports(_results(request.param), tmp_path / "r",
                                        devices={"127.0.0.1:40001": {"ro.product.model": "Pixel 7"}}, title="t")


def test_report_json_says_where_latencies_were_measured(written) -> None:
    source, paths = written
    doc = json.loads(paths.json.read_text())
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["schema_version"] == SCHEMA_VERSION == 4
    assert [r["timing_source"] for r in doc["results"]] == [source, source, None, source]
    result = doc["results"][0]
    validator = jsonschema.Draft202012Validator({"$defs": schema()["$defs"], "$ref": "#/$defs/result"})
    with pytest.raises(jsonschema.ValidationError):  # required from v2 on: a reader never has to guess
        validator.validate({k: v for k, v in result.items() if k != "timing_source"})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**result, "timing_source": "phone"})


def test_html_notes_host_timings_beside_the_latencies(written) -> None:
    source, paths = written
    html = paths.html.read_text()
    notes = re.findall(r'<p class="timing-note">([^<]*)</p>', html)
    if source == HOST:  # under the summary table, and beside each job's latency figures (two jobs have them)
        assert notes == [HOST_TIMING] * 3
        sections = html.split('<section class="result"')[1:]
        assert all(HOST_TIMING in s for s, r in zip(sections, _results(HOST), strict=True) if r.latency)
    else:
        assert notes == [] and HOST_TIMING not in html


def test_junit_has_a_timing_property_and_says_it_in_each_case(written) -> None:
    source, paths = written
    suite = ET.parse(paths.junit).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {"timing": "host (emulated device)" if source == HOST else "device"}
    outs = [c.findtext("system-out") for c in suite.findall("testcase")]
    # beside the figures: the last job has none (its timings could not be read)
    assert [HOST_TIMING in o for o in outs] == [source == HOST, source == HOST, False, False]


def test_junit_of_a_mixed_farm_labels_each_case_only(tmp_path: Path) -> None:
    results = _results(HOST)
    results[1].timing_source = DEVICE
    suite = ET.parse(write_reports(results, tmp_path / "r", devices={}, title="t").junit).getroot().find("testsuite")
    assert suite.find("properties") is None  # no one value for the whole suite
    assert [HOST_TIMING in c.findtext("system-out") for c in suite.findall("testcase")] == [True, False, False, False]


@pytest.mark.parametrize("source", [HOST, DEVICE])
def test_terminal_table_has_a_caption_for_host_timings(source: str) -> None:
    console = Console(record=True, width=200)
    odd = JobResult("m", "cpu", "pixel", "emu", ERROR, "x", timing_source=source)  # the narrowest table
    for results in (_results(source), [odd]):
        console.print(summary_table(results, "127.0.0.1:40001"))
        lines = [line.strip() for line in console.export_text().splitlines()]
        assert (HOST_TIMING in lines) == (source == HOST)  # one line of its own, not wrapped


def _report(folder: Path, source: str | None, median_ms: float) -> Path:
    result = _results(source)[0]
    result.latency = LatencyStats.from_timings(1.0, [median_ms] * 5, run_inferences=[1] * 5)  # 5 runs of one
    return write_reports([result], folder, devices={}, title="t").json


def test_diff_does_not_compare_host_latencies_with_a_phones(tmp_path: Path) -> None:
    host = _report(tmp_path / "host", HOST, 1.0)
    phone = _report(tmp_path / "phone", DEVICE, 9.0)
    report = diff_reports(host, phone, DiffOptions())
    (finding,) = report.findings
    assert finding.kind == "latency" and not finding.regression and not report.regressed
    assert finding.message == "not compared: the baseline's latency was measured on the host (emulated device), " \
                              "the new one's on the device"
    slower_phone = _report(tmp_path / "phone2", DEVICE, 20.0)
    assert diff_reports(phone, slower_phone, DiffOptions()).regressed  # like with like is still compared


def test_diff_reads_a_version_1_report(tmp_path: Path) -> None:
    """Baselines written before timing_source existed: their latencies are compared as they always were."""
    new = _report(tmp_path / "new", HOST, 5.0)
    old = json.loads(new.read_text())
    old["schema_version"] = 1
    del old["results"][0]["timing_source"]
    old["results"][0]["latency"] = copy.deepcopy(old["results"][0]["latency"]) | {"inference_ms": [1.0] * 5}
    del old["results"][0]["latency"]["run_inferences"], old["results"][0]["latency"]["host_reference_ms"]
    old["results"][0]["runs"] = 5  # before schema 3, `runs` equal parts of inference_ms are the runs
    base = tmp_path / "v1.json"
    base.write_text(json.dumps(old))
    (finding,) = diff_reports(base, new, DiffOptions()).findings
    assert finding.kind == "latency" and finding.regression and finding.message.startswith("median latency 1.000")


@pytest.mark.e2e
def test_an_emulated_deploy_labels_its_latencies_at_the_terminal_and_in_every_report(
        adb_server, deploy_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from tasks import main

    monkeypatch.setattr(sys, "argv", ["edgeloop", "deploy", "--emulate", "--config", str(CONFIG), "--runtime", "cpu",
                                      "--adb", f"127.0.0.1:{adb_server.port}", "--report-dir", str(tmp_path)])
    main()  # returns: the check passed (a failure would exit)
    out = capsys.readouterr().out
    assert HOST_TIMING in [line.strip() for line in out.splitlines()]
    (folder,) = tmp_path.iterdir()
    (result,) = json.loads((folder / "report.json").read_text())["results"]
    assert result["timing_source"] == HOST and result["latency"]["median_ms"] > 0
    assert HOST_TIMING in (folder / "report.html").read_text()
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite.find("properties/property[@name='timing']").get("value") == "host (emulated device)"
