"""The history's trend page: self-contained, and in headless Chromium its plots are there, drawn, and
every label inside its chart without overlapping another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.history.query import select_jobs
from harness.history.record import record_report
from harness.history.trend import write_trend
from harness.report.results import FAILED
from harness.report.svg import tick_format, ticks
from tests.harness.chromium import assert_labels_clear, chromium, measure_plots
from tests.harness.history_fixtures import at, job, report

RUNS = 30


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """A trend page of RUNS runs of digits/cpu (latency drifting up, one failed run, peak memory) and
    three of digits/gpu with no memory figure."""
    where = str(tmp_path / "history.sqlite")
    for i in range(RUNS):
        slow = 1.0 + 0.01 * i
        jobs = [job(samples=[slow, slow * 1.1, slow * 0.95], status=FAILED if i == 7 else "passed",
                    noise=2.0 if i == 7 else 1e-6)]
        if i < 3:
            jobs.append(job(runtime="gpu", samples=[2.0 + i, 2.1 + i]))
        path = report(tmp_path / "r" / str(i), jobs, at(1 + i // 24, i % 24), memory_kb=[40960 + 512 * i])
        record_report(where, path, kind="deploy", project=tmp_path)
    return write_trend(select_jobs(where), tmp_path / "trend.html", where=where)


def test_the_page_is_self_contained_with_its_plots(page: Path) -> None:
    text = page.read_text()
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in text
    assert text.count('class="plot trend-latency"') == 2 and text.count('class="plot trend-accuracy"') == 2
    assert text.count('class="plot trend-memory"') == 1 and "no peak memory in these runs" in text
    latency = text.split('class="plot trend-latency"')[1].split("</svg>")[0]
    assert latency.count("<circle") == RUNS + 1  # every run, and the legend's "did not pass"
    assert "latency (ms)" in latency and "run did not pass" in latency
    assert "peak memory" in text and "memory (MiB)" in text and "fraction (1 = best)" in text


def test_chromium_draws_every_plot_with_its_labels_inside(page: Path, tmp_path: Path) -> None:
    charts = measure_plots(page, tmp_path)
    assert sorted(c["cls"] for c in charts) == sorted(["plot trend-latency"] * 2 + ["plot trend-accuracy"] * 2
                                                      + ["plot trend-memory"])
    for chart in charts:
        assert chart["width"] > 0 and chart["drawn"] >= 3, chart
        assert_labels_clear(chart)


def test_chromium_screenshot_shows_the_plots(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri(), tmp=tmp_path)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int).reshape(-1, 3)
    line = int((np.abs(rgb - [0x3B, 0x6E, 0xA8]) < 24).all(axis=1).sum())  # the plots' blue
    red = int(((rgb[:, 0] > 170) & (rgb[:, 1] < 80) & (rgb[:, 2] < 70)).sum())  # the failed run's markers
    assert line > 500 and red > 20, (line, red)


def test_ticks_are_round_and_cover_the_values() -> None:
    assert ticks(0.0, 3.14) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert ticks(0.9991, 0.9999) == pytest.approx([0.999, 0.9992, 0.9994, 0.9996, 0.9998, 1.0])
    assert ticks(5.0, 5.0)[0] < 5.0 < ticks(5.0, 5.0)[-1]  # one value: a range around it
    assert ticks(0.9999999999999998, 1.0) == pytest.approx([0.99, 0.995, 1.0, 1.005, 1.01])  # float noise: one value
    assert tick_format([0.0, 2.5, 5.0]).format(2.5) == "2.5" and tick_format([0.0, 1.0]).format(1.0) == "1"
    assert tick_format([0.999, 0.9992]).format(0.9992) == "0.9992"
