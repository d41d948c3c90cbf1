"""report.html: one self-contained page (inline CSS and SVG, no script), rendered from a jinja2 template:
the summary, the runtimes of each model compared, the devices, then every job with its charts."""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from harness.history.plot import Line, Run, trend_chart
from harness.report import charts
from harness.report.compare_runtimes import Comparison, Row, compare
from harness.report.results import HOST, HOST_TIMING

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "."), autoescape=True,
                          undefined=jinja2.StrictUndefined)
_ENV.filters["num"] = lambda v, fmt="%.4g", none="n/a": none if v is None else fmt % v
_ENV.filters["bytes"] = lambda v: "-" if v is None else f"{v:,} B"
_LIMIT_WORDS = {"min_cosine": "cos ≥ {}", "min_sqnr_db": "SQNR ≥ {} dB", "max_abs": "max abs ≤ {}",
                "min_top1_agreement": "top-1 agree ≥ {}"}
_ENV.globals.update(HOST=HOST, HOST_TIMING=HOST_TIMING)
_ENV.globals["limit_text"] = lambda limits: ", ".join(
    _LIMIT_WORDS[k].format(v) for k, v in limits.items() if v is not None and k in _LIMIT_WORDS)
HOST_TITLE = " (host timings: the emulated device)"


def _ms_axis(what: str, host: bool) -> str:
    return f"{what}{' on the host CPU' if host else ''} (ms)"


def _plots(result: dict[str, Any]) -> dict[str, Any]:
    """The SVG charts of one result, already escaped inside (marked safe for the template)."""
    plots: dict[str, Any] = {"latency": "", "layers": "", "outputs": [], "temperature": "", "memory": ""}
    latency, host = result["latency"], result["timing_source"] == HOST
    if latency and latency["inference_ms"]:
        count, runs = len(latency["inference_ms"]), len(latency["run_inferences"])
        plots["latency"] = charts.histogram(
            *charts.bins(latency["inference_ms"]), css_class="latency-plot",
            title=f"Latency per inference: {count} inferences in {runs} run{'s' * (runs != 1)}"
                  + (HOST_TITLE if host else ""),
            axis=_ms_axis("latency per inference", host), count_axis="inferences",
            bar_label=f"inferences per bin, {charts.WHERE[host]}", color=charts.sample_color(host),
            markers=charts.percentiles(latency["median_ms"], latency["p90_ms"]))
    if latency:
        plots["layers"] = charts.bars([(x["name"], x["ms"]) for x in latency["slowest_layers"]], column="layer",
                                      suffix=" ms",
                                      title="Slowest layers: median time per inference" + (HOST_TITLE if host else ""),
                                      axis=_ms_axis("median time per inference", host), css_class="layer-plot",
                                      host=host)
    for output in result["outputs"]:
        hist = output["error_histogram"]
        plots["outputs"].append(charts.histogram(
            hist.get("edges", []), hist.get("counts", []), title=f"|device − reference| of {output['name']}",
            axis=f"|device − reference| (units of {output['name']})", count_axis="elements",
            css_class="error-plot", color=charts.ERROR_COLOR))
    plots.update(_device_plots(result))
    cosines = [o["metrics"]["cosine"] for o in result["outputs"]]
    worst = "-" if not cosines else "n/a" if None in cosines else f"{min(cosines):.6f}"
    safe = {k: Markup(v) if isinstance(v, str) else [Markup(x) for x in v] for k, v in plots.items()}
    return {"worst_cosine": worst, **safe}


def _device_plots(result: dict[str, Any]) -> dict[str, str]:
    """The device's temperature around each measured run and net-run's peak memory in it (schema 4)."""
    thermal, memory = result.get("thermal"), result.get("memory")
    count = len((thermal or {}).get("run_before_c") or (memory or {}).get("run_peak_kb") or [])
    runs = [Run(str(n), "", f"run {n}", True) for n in range(1, count + 1)]
    x_axis = f"measured run ({count}, in order)"
    temperature = trend_chart(runs, [Line("before the run", thermal["run_before_c"]),
                                     Line("after the run", thermal["run_after_c"])],
                              title="Device temperature around each measured run (hottest CPU zone)",
                              axis="temperature", unit="°C", css_class="temperature-plot",
                              x_axis=x_axis) if thermal else ""
    peak = trend_chart(runs, [Line("peak resident memory (VmHWM)",
                                   [None if kb is None else kb / 1024 for kb in memory["run_peak_kb"]])],
                       title="Peak memory of net-run in each measured run", axis="memory", unit="MiB",
                       css_class="memory-plot", from_zero=True, x_axis=x_axis) if memory else ""
    return {"temperature": temperature, "memory": peak}


def _comparison_plots(comparison: Comparison) -> dict[str, Markup]:
    """The strip chart of every runtime's inferences and, with a cpu job to compare with, the speed-ups."""
    measured = [row for row in comparison.rows if row.latency]
    several = len({row.result["device"] for row in measured}) > 1  # then a runtime's row names its device

    def label(row: Row) -> str:
        return row.runtime + (f" on {row.result['device']}" if several else "")

    where = HOST_TITLE if comparison.host else ""
    latency = charts.strips([charts.Strip(label(row), row.latency["inference_ms"], row.latency["median_ms"],
                                          row.latency["p90_ms"], row.result["timing_source"] == HOST)
                             for row in measured], css_class="runtime-latency",
                            title=f"Latency per inference of {comparison.model} on {comparison.profile}, by "
                                  f"runtime{where}", axis=_ms_axis("latency per inference", comparison.host))
    faster = [row for row in measured if row.speedup is not None]
    host = any(row.result["timing_source"] == HOST for row in faster)  # all as the cpu job's
    speedups = charts.bars([(label(row), row.speedup) for row in faster], column="runtime", suffix="×",
                           title=f"Speed-up against cpu (cpu p50 / runtime p50){HOST_TITLE if host else ''}",
                           axis="speed-up against cpu (×, above 1 is faster)", css_class="speedup-plot",
                           host=host) if len(faster) > 1 else ""
    return {"latency": Markup(latency), "speedups": Markup(speedups)}


def render_html(document: dict[str, Any]) -> str:
    template = _ENV.get_template("report.html.j2")
    comparisons = [(c, _comparison_plots(c)) for c in compare(document)]
    return template.render(doc=document, plots=[_plots(r) for r in document["results"]], comparisons=comparisons)
