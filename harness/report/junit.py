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


def junit_xml(document: dict[str, Any]) -> bytes:
    results = document["results"]
    summary = document["summary"]
    suites = ET.Element("testsuites", name=document["title"])
    suite = ET.SubElement(suites, "testsuite", name=document["title"], tests=str(summary["total"]),
                          failures=str(summary["failed"]), errors=str(summary["errors"]), skipped="0",
                          timestamp=document["created"],
                          time=f"{sum(sum(r['phases_s'].values()) for r in results):.3f}")
    sources = {r["timing_source"] for r in results if r["timing_source"]}
    if len(sources) == 1:  # one place for every job's latencies (a farm may mix phones and emulated devices)
        (source,) = sources
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="timing",
                      value="host (emulated device)" if source == HOST else source)
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=f"{result['model']}.{result['profile']}",
                             name=result["runtime"], time=f"{sum(result['phases_s'].values()):.3f}")
        attempts = result.get("attempts", [])
        if attempts:  # a farm job: CI shows a retry as the test case's properties and output
            properties = ET.SubElement(case, "properties")
            ET.SubElement(properties, "property", name="attempts", value=str(len(attempts)))
            ET.SubElement(properties, "property", name="retried", value=str(len(attempts) > 1).lower())
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
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
