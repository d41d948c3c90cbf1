"""junit.xml: one test case per model × runtime, so CI systems show deploy checks like tests."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from harness.report.results import ERROR, FAILED, HOST, HOST_TIMING

# Characters XML 1.0 cannot hold at all (ElementTree would write them, and CI's parsers then reject
# the file): control characters such as the ANSI colour escapes of a tool's stderr line.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _findings(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The baseline comparison's findings by job (model/profile/runtime), when the report has one."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for finding in (document.get("baseline") or {}).get("findings", []):
        by_job.setdefault(finding["job"], []).append(finding)
    return by_job


def _property(parent: ET.Element, name: str, value: str) -> None:
    properties = parent.find("properties")
    if properties is None:
        properties = ET.Element("properties")
        parent.insert(0, properties)  # before failure and system-out, as the JUnit schema orders them
    ET.SubElement(properties, "property", name=name, value=_text(value))


def _measured(case: ET.Element, result: dict[str, Any]) -> None:
    """What the device showed (report schema 4), as properties CI can chart: peak memory, temperatures, and
    the run options that shape them."""
    memory, thermal = result.get("memory") or {}, result.get("thermal") or {}
    shown = {"peak_memory_kb": memory.get("peak_kb"), "temperature_before_c": thermal.get("before_c"),
             "temperature_after_c": thermal.get("after_c"), "cooldown_s": thermal.get("cooldown_s") or None,
             **(result.get("run_options") or {})}
    for name, value in shown.items():
        if value is not None:
            _property(case, name, f"{value:.1f}" if isinstance(value, float) else str(value))


def _regressed(case: ET.Element, findings: list[dict[str, Any]], passed: bool) -> bool:
    """The baseline's findings of one test case as its properties; its regressions as a failure when the job
    itself passed (a job that did not pass already has its failure or error). Returns whether one was added."""
    for finding in findings:
        _property(case, f"baseline.{finding['kind']}", f"{finding['verdict']}: {finding['message']}")
    regressions = [f["message"] for f in findings if f["regression"]]
    if not (passed and regressions):
        return False
    detail = ET.SubElement(case, "failure", message=_text(f"regression against the baseline: {regressions[0]}"),
                           type="baseline regression")
    detail.text = _text("\n".join(regressions))
    return True


def junit_xml(document: dict[str, Any]) -> bytes:
    results = document["results"]
    summary = document["summary"]
    findings = _findings(document)
    suites = ET.Element("testsuites", name=document["title"])
    suite = ET.SubElement(suites, "testsuite", name=document["title"], tests=str(summary["total"]),
                          failures=str(summary["failed"]), errors=str(summary["errors"]), skipped="0",
                          timestamp=document["created"],
                          time=f"{sum(sum(r['phases_s'].values()) for r in results):.3f}")
    sources = {r["timing_source"] for r in results if r["timing_source"]}
    if len(sources) == 1:  # one place for every job's latencies (a farm may mix phones and emulated devices)
        (source,) = sources
        _property(suite, "timing", "host (emulated device)" if source == HOST else source)
    if document.get("baseline"):
        baseline = document["baseline"]
        _property(suite, "baseline", baseline["base"])
        _property(suite, "baseline.regressions", str(sum(f["regression"] for f in baseline["findings"])))
    failures, tests = summary["failed"], summary["total"]
    for result in results:
        key = f"{result['model']}/{result['profile']}/{result['runtime']}"
        case = ET.SubElement(suite, "testcase", classname=f"{result['model']}.{result['profile']}",
                             name=result["runtime"], time=f"{sum(result['phases_s'].values()):.3f}")
        attempts = result.get("attempts", [])
        if attempts:  # a farm job: CI shows a retry as the test case's properties and output
            _property(case, "attempts", str(len(attempts)))
            _property(case, "retried", str(len(attempts) > 1).lower())
        _measured(case, result)
        failures += _regressed(case, findings.pop(key, []), result["status"] not in (FAILED, ERROR))
        if result["status"] in (FAILED, ERROR):
            tag = "failure" if result["status"] == FAILED else "error"
            detail = ET.SubElement(case, tag, message=_text(result["failure"] or result["status"]))
            detail.text = _text("\n".join(f"{o['name']}: {r}" for o in result["outputs"] for r in o["reasons"]))
        lines = [f"device {result['device'] or '-'}; run folder {result['run_dir'] or '-'}"]
        lines += [f"attempt {n} on {a['device']}: {a['outcome']} after {a['seconds']:.1f} s"
                  + (f" ({a['detail']})" if a["detail"] else "") for n, a in enumerate(attempts, 1)]
        lines += [f"next: {h}" for h in result.get("hints", [])]
        lines += [f"warning: {w}" for w in result.get("warnings", [])]
        if result["latency"] and result["timing_source"] == HOST:
            lines.append(HOST_TIMING)
        ET.SubElement(case, "system-out").text = _text("\n".join(lines))
    for key, missing in findings.items():  # jobs of the baseline that the new report lacks
        model, profile, runtime = key.rsplit("/", 2)
        case = ET.SubElement(suite, "testcase", classname=f"{model}.{profile}", name=runtime, time="0")
        failures += _regressed(case, missing, True)
        tests += 1
    suite.set("failures", str(failures))
    suite.set("tests", str(tests))
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
