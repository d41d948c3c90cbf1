"""report.html for people: the runtimes of each model compared (latency, speed-up against cpu, containers,
accuracy), latency charts with their p50 and p90 marked, units on every axis, and, in headless Chromium,
every chart drawn with no label cut off or on top of another, long names included."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.compare import default_limits, error_histogram, judge, measure
from harness.report import ReportPaths, write_reports
from harness.report.compare_runtimes import compare
from harness.report.document import build_document
from harness.report.html import render_html
from harness.report.results import (
    DEVICE,
    ERROR,
    FAILED,
    HOST,
    PASSED,
    DeviceMeasures,
    JobResult,
    LatencyStats,
    OutputResult,
)
from harness.report.svg import text_width, tick_format, ticks, wrap
from tests.harness.chromium import assert_labels_clear, chromium, measure_plots

PHONE, EMULATED = "R5CT1234567", "127.0.0.1:40001"
FARM_SERIALS = ("farm-rack-07-slot-12-Pixel-7-serial-28131FDH2000QV", "farm-rack-09-slot-03-Pixel-7-serial-31011FDH")
LONG_MODEL = "mobilenet_v3_large_224_int8_per_channel_with_a_model_name_longer_than_any_chart_is_wide"
LONG_LAYER = "/backbone/features.12/block/block.3/squeeze_excitation/fc2/Conv_output_0_quantized_requantize"
SVG = "{http://www.w3.org/2000/svg}"
FACTORS = (0.9, 1.0, 1.0, 1.3)  # each run's latencies, times a job's median
P90 = float(np.percentile(FACTORS * 3, 90))  # of three runs


def _output(runtime: str, wrong: int) -> OutputResult:
    """A classifier output of 8 inferences, `wrong` of them of another class than the reference's."""
    rng = np.random.default_rng(len(runtime))
    reference = [rng.normal(size=(1, 10)) for _ in range(8)]
    device = [r + rng.normal(scale=1e-3, size=r.shape) for r in reference]
    for d in device[:wrong]:
        d[0, (int(np.argmax(d)) + 1) % 10] += 100.0
    labels = [int(np.argmax(r)) for r in reference]
    metrics = measure(reference, device, labels=labels)
    limits = default_limits(runtime)
    return OutputResult("probs", (1, 10), metrics, limits, judge(metrics, limits), error_histogram(reference, device))


def _job(model: str, runtime: str, median: float, *, device: str = PHONE, source: str = DEVICE, runs: int = 3,
         wrong: int = 0, layers: tuple[str, ...] = ("conv1", "fc")) -> JobResult:
    """A job whose every run gives median × FACTORS: its p50 is `median`, its p90 P90 × `median`."""
    samples = [median * f for _ in range(runs) for f in FACTORS]
    latency = LatencyStats.from_timings(5.0, samples, {name: [median / (i + 2)] for i, name in enumerate(layers)},
                                        run_inferences=[4] * runs,
                                        host_reference_ms=[0.5] * len(samples) if source == HOST else None)
    kind, output = "quantized" if runtime == "dsp" else "float", _output(runtime, wrong)
    why = "; ".join(output.verdict.reasons) or None
    return JobResult(model, runtime, "pixel", device, FAILED if why else PASSED, why, "ab" * 32,
                     ("cd" if kind == "float" else "ef") * 32, kind, f"{model}-{runtime}", outputs=[output],
                     latency=latency, timing_source=source, runs=runs)


# what the phone showed around digits/cpu's three runs: it warms, net-run peaks at 40-42 MiB
MEASURES = DeviceMeasures([31.0, 33.5, 35.0], [34.0, 36.0, 37.5], [40960, 43008, 41984], [5, 6, 5], [0.0, 0.0, 0.0],
                          {"cpu-big": 31.0, "skin": 28.0}, {"cpu-big": 37.5, "skin": 30.0}, 20.0)


def sample_results() -> list[JobResult]:
    """digits on a phone (cpu 10 ms with its memory and temperatures, gpu 4 ms, dsp 2 ms quantized with 2 of 8
    wrong, aip that did not run), a long-named model on the emulated device (host timings), and a farm's model
    on two devices with no cpu job."""
    aip = JobResult("digits", "aip", "pixel", PHONE, ERROR, "the bundle has no aip runtime")
    measured = replace(_job("digits", "cpu", 10.0, layers=("conv1", LONG_LAYER, "fc")), measures=MEASURES)
    return [measured, _job("digits", "gpu", 4.0),
            _job("digits", "dsp", 2.0, wrong=2), aip,
            _job(LONG_MODEL, "cpu", 0.02, device=EMULATED, source=HOST),
            _job(LONG_MODEL, "gpu_fp16", 0.03, device=EMULATED, source=HOST),
            *(_job("farm_model", runtime, 7.0, device=serial) for serial in FARM_SERIALS
              for runtime in ("gpu", "gpu_fp16"))]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return write_reports(sample_results(), tmp_path_factory.mktemp("report"), devices={}, title="several models")


def _svgs(page: str, css_class: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(rf'<svg [^>]*class="plot {css_class}".*?</svg>', page, re.S)]


def _cells(page: str, table_class: str) -> list[list[str]]:
    """The text of each row of the first table of that class."""
    table = page.split(f'<table class="{table_class}">')[1].split("</table>")[0]
    return [[" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]


def test_speedups_are_against_the_cpu_job_of_the_same_model_and_profile() -> None:
    doc = build_document(sample_results(), devices={}, title="t")
    digits, emulated, farm = compare(doc)
    assert [(r.runtime, r.speedup) for r in digits.rows] == [("cpu", 1.0), ("gpu", 2.5), ("dsp", 5.0), ("aip", None)]
    assert digits.no_speedup == "" and not digits.host and emulated.host
    assert emulated.rows[1].speedup == pytest.approx(0.02 / 0.03)
    assert [r.speedup for r in farm.rows] == [None] * 4
    assert farm.no_speedup == "no cpu job of this model and profile in the report"
    dsp = digits.rows[2]
    assert dsp.top1_accuracy == pytest.approx(6 / 8) and dsp.top1_agreement == pytest.approx(6 / 8)
    assert digits.rows[0].top1_accuracy == 1.0 and digits.rows[3].cosine is None


def test_no_speedup_against_a_cpu_job_timed_elsewhere_or_without_latencies() -> None:
    phone_cpu, host_gpu = _job("m", "cpu", 10.0), _job("m", "gpu", 5.0, device=EMULATED, source=HOST)
    (mixed,) = compare(build_document([phone_cpu, host_gpu], devices={}, title="t"))
    assert [r.speedup for r in mixed.rows] == [1.0, None]  # a phone's cpu against the host's CPU: not compared
    phone_cpu.latency = None
    (unmeasured,) = compare(build_document([phone_cpu, _job("m", "gpu", 5.0)], devices={}, title="t"))
    assert [r.speedup for r in unmeasured.rows] == [None, None]
    assert unmeasured.no_speedup == "the cpu job has no latency figures"


def test_the_comparison_table_has_the_figures(written: ReportPaths) -> None:
    page = written.html.read_text()
    digits = _cells(page, "runtimes")
    assert [(row[0], row[4], row[5], row[6]) for row in digits] == [
        ("cpu", "10.000", f"{10 * P90:.3f}", "1.00×"), ("gpu", "4.000", f"{4 * P90:.3f}", "2.50×"),
        ("dsp", "2.000", f"{2 * P90:.3f}", "5.00×"), ("aip", "-", "-", "-")]
    assert digits[2][3] == "quantized efefefefefef" and digits[2][7:9] == ["0.750", "0.750"]
    assert digits[3][2] == "error" and "container sizes are not in this report" in page
    assert "no speed-up figures: no cpu job of this model and profile in the report" in page
    assert page.count("these latencies and speed-ups say nothing of a phone's") == 1  # the emulated model's


def test_container_sizes_float_against_quantized() -> None:
    doc = build_document(sample_results()[:4], devices={}, title="t")
    for result, size in zip(doc["results"], (400_000, 400_000, 100_000, None), strict=True):
        result["container_bytes"] = size
    page = render_html(doc)
    float_cell = "float, 400,000 B cdcdcdcdcdcd"
    assert [row[3] for row in _cells(page, "runtimes")] == [float_cell, float_cell, "quantized, 100,000 B efefefefefef",
                                                            "-"]
    assert ("containers: float 400,000 B, quantized 100,000 B: the quantized one is 4.00× smaller (25 % of the "
            "float size)") in " ".join(page.split())


def test_the_page_is_self_contained_and_has_every_chart(written: ReportPaths) -> None:
    page = written.html.read_text()
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in page
    assert [len(_svgs(page, c)) for c in ("runtime-latency", "speedup-plot", "latency-plot", "layer-plot",
                                           "error-plot", "temperature-plot", "memory-plot")] == [3, 2, 9, 9, 9, 1, 1]
    summary = page.split('<table id="summary-table">')[1].split("</table>")[0]
    assert "<th>peak MiB</th>" in summary and ">42.0</td>" in summary and "31.0 → 37.5" in summary


def _axis_map(chart: ET.Element) -> tuple[float, float]:
    """Offset and px per unit of the x axis, from its numeric tick labels (the middle-anchored numbers)."""
    ticks_at = [(float(t.get("x")), float(t.text)) for t in chart.iter(f"{SVG}text")
                if t.get("text-anchor") == "middle" and t.text and re.fullmatch(r"[-\d.e+]+", t.text)]
    (x0, v0), (x1, v1) = ticks_at[0], ticks_at[-1]
    return x0 - v0 * (x1 - x0) / (v1 - v0), (x1 - x0) / (v1 - v0)


def test_p50_and_p90_markers_sit_at_their_values(written: ReportPaths) -> None:
    page = written.html.read_text()
    digits_cpu = _svgs(page, "latency-plot")[0]
    strips = _svgs(page, "runtime-latency")[0]
    for chart, medians in ((digits_cpu, [10.0]), (strips, [10.0, 4.0, 2.0])):
        offset, scale = _axis_map(chart)
        for name, factor in (("p50", 1.0), ("p90", P90)):
            xs = [float(line.get("x1")) for line in chart.iter(f"{SVG}line") if line.get("class") == name]
            assert xs == pytest.approx([offset + scale * m * factor for m in medians], abs=0.2), name
    legend = [t.text for t in digits_cpu.iter(f"{SVG}text")]
    assert "p50 (median) 10 ms" in legend and f"p90 {10 * P90:.3g} ms" in legend


def test_chromium_draws_every_chart_with_units_and_every_label_clear(written: ReportPaths, tmp_path: Path) -> None:
    charts = measure_plots(written.html, tmp_path)
    by_class: dict[str, list[dict]] = {}
    for chart in charts:
        by_class.setdefault(chart["cls"].removeprefix("plot "), []).append(chart)
    assert {k: len(v) for k, v in by_class.items()} == {"runtime-latency": 3, "speedup-plot": 2, "latency-plot": 9,
                                                        "layer-plot": 9, "error-plot": 9, "temperature-plot": 1,
                                                        "memory-plot": 1}
    units = {"runtime-latency": "(ms)", "speedup-plot": "(×, above 1 is faster)", "latency-plot": "(ms)",
             "layer-plot": "(ms)", "error-plot": "(units of probs)", "temperature-plot": "(°C)",
             "memory-plot": "(MiB)"}
    for cls, found in by_class.items():
        for chart in found:
            assert chart["width"] > 0
            assert_labels_clear(chart)
            assert any(t.endswith(units[cls]) for t in chart["texts"]), (cls, chart["texts"])
            drawn = chart["marks"].get("bar", 0) + chart["marks"].get("sample", 0)
            assert drawn >= 2 or chart["drawn"] >= 3, chart  # the device's charts: a line and its points
    (temperature,) = by_class["temperature-plot"]
    assert temperature["drawn"] == 2 + 2 * 3  # a line and its 3 points before the runs, and after
    assert {"before the run", "after the run", "measured run (3, in order)"} <= set(temperature["texts"])
    for chart in by_class["latency-plot"]:
        assert chart["marks"]["p50"] == chart["marks"]["p90"] == 1 and "inferences" in chart["texts"]
    for chart in by_class["error-plot"]:
        assert "elements" in chart["texts"]
    digits, emulated, farm = by_class["runtime-latency"]
    assert digits["marks"]["p50"] == digits["marks"]["p90"] == 3 and digits["marks"]["sample"] == 36
    wrapped = [t.replace(" ", "") for t in farm["texts"]]  # a wrapped label's lines: one text, no space between
    assert farm["marks"]["p50"] == 4 and f"gpu_fp16on{FARM_SERIALS[1]}" in wrapped
    assert any(LONG_MODEL in t for t in emulated["texts"])
    assert "latency per inference on the host CPU (ms)" in emulated["texts"]
    assert "one inference, timed on the host CPU (emulated device)" in emulated["texts"]
    assert "latency per inference (ms)" in digits["texts"] and "runtime" in digits["texts"]
    assert [t for t in by_class["speedup-plot"][0]["texts"] if t in ("2.5×", "5×")] == ["2.5×", "5×"]
    assert LONG_LAYER in by_class["layer-plot"][0]["texts"]


def test_chromium_screenshot_shows_device_and_host_samples_and_p90_lines(written: ReportPaths, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1100,9000", written.html.as_uri(), tmp=tmp_path)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int).reshape(-1, 3)

    def near(color: tuple[int, int, int]) -> int:
        return int((np.abs(rgb - color) < 20).all(axis=1).sum())

    device, host, p90 = near((0x3B, 0x6E, 0xA8)), near((0x8E, 0x44, 0xAD)), near((0xD9, 0x82, 0x2B))
    assert device > 5000 and host > 1000 and p90 > 200, (device, host, p90)


def test_long_names_wrap_at_separators_within_the_width() -> None:
    lines = wrap(LONG_LAYER, 190)
    assert "".join(lines) == LONG_LAYER and len(lines) > 1
    assert all(text_width(line) <= 190 for line in lines) and all(line.endswith(("/", "_", ".")) for line in lines[:-1])
    word = wrap("x" * 80, 100)  # no separator: cut anywhere
    assert "".join(word) == "x" * 80 and len(word) > 3 and all(text_width(line) <= 100 for line in word)


def test_tick_labels_stay_short_for_tiny_and_huge_values() -> None:
    assert tick_format(ticks(0.0, 3e-7)).format(2e-7) == "2e-07"
    assert tick_format(ticks(0.0, 1e-7)).format(2.5e-8) == "2.50e-08"
    assert tick_format(ticks(0.0, 1.2e6)).format(1.5e6) == "1.5e+06"
    assert ticks(0.0, 3.0, whole=True) == [0.0, 1.0, 2.0, 3.0] and ticks(4.0, 4.0, whole=True) == [3.0, 4.0, 5.0]
