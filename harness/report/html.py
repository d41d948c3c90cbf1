"""report.html: one self-contained page (inline CSS and SVG), rendered from a jinja2 template."""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from harness.report import svg
from harness.report.results import HOST, HOST_TIMING

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "."), autoescape=True,
                          undefined=jinja2.StrictUndefined)
_ENV.filters["num"] = lambda v, fmt="%.4g": "n/a" if v is None else fmt % v
_LIMIT_WORDS = {"min_cosine": "cos ≥ {}", "min_sqnr_db": "SQNR ≥ {} dB", "max_abs": "max abs ≤ {}",
                "min_top1_agreement": "top-1 agree ≥ {}"}
_ENV.globals.update(HOST=HOST, HOST_TIMING=HOST_TIMING)
_ENV.globals["limit_text"] = lambda limits: ", ".join(
    _LIMIT_WORDS[k].format(v) for k, v in limits.items() if v is not None and k in _LIMIT_WORDS)


def _plots(result: dict[str, Any]) -> dict[str, Any]:
    """The SVG charts of one result, already escaped inside (marked safe for the template)."""
    plots: dict[str, Any] = {"latency": "", "layers": "", "outputs": []}
    latency = result["latency"]
    if latency:
        plots["latency"] = svg.histogram(latency["inference_ms"], title="Inference latency distribution", unit="ms",
                                         css_class="latency-plot")
        plots["layers"] = svg.horizontal_bars([(x["name"], x["ms"]) for x in latency["slowest_layers"]],
                                              title="Slowest layers (median per inference)", unit="ms",
                                              css_class="layer-plot")
    for output in result["outputs"]:
        hist = output["error_histogram"]
        plots["outputs"].append(svg.histogram_from_counts(
            hist.get("edges", []), hist.get("counts", []), title=f"|device − reference| of {output['name']}",
            unit="", css_class="error-plot"))
    cosines = [o["metrics"]["cosine"] for o in result["outputs"]]
    worst = "-" if not cosines else "n/a" if None in cosines else f"{min(cosines):.6f}"
    safe = {k: Markup(v) if isinstance(v, str) else [Markup(x) for x in v] for k, v in plots.items()}
    return {"worst_cosine": worst, **safe}


def render_html(document: dict[str, Any]) -> str:
    template = _ENV.get_template("report.html.j2")
    return template.render(doc=document, plots=[_plots(r) for r in document["results"]])
