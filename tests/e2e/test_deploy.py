"""`deploy` end to end: the example project through the real adb server on emulated devices."""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from deploy.errors import CheckFailed, EdgeloopError
from harness.pipeline import deploy
from harness.report.document import schema
from harness.report.results import ERROR, PASSED
from tests.harness.conftest import CONFIG, ROOT

pytestmark = pytest.mark.e2e


def _cli(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    invoke = Path(sys.executable).with_name("invoke")
    return subprocess.run([str(invoke), "-r", str(ROOT), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env}, cwd=cwd)


def _chromium_dom(html: Path, tmp: Path) -> str:
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'chrome'}",
         "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp)})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_deploy_pixel_cpu_gpu_then_again_with_nothing_to_push(adb_server, deploy_env, tmp_path: Path) -> None:
    adb = f"127.0.0.1:{adb_server.port}"
    outcome = deploy("pixel", config_path=CONFIG, runtimes=["cpu", "gpu", "dsp"], adb=adb, emulate=True,
                     report_root=tmp_path / "reports")
    by_runtime = {r.runtime: r for r in outcome.results}
    assert by_runtime["cpu"].status == PASSED and by_runtime["gpu"].status == PASSED
    # A runtime the profile lacks is reported as not run, never as passed.
    assert by_runtime["dsp"].status == ERROR and "profile 'pixel' has no dsp runtime" in by_runtime["dsp"].failure
    assert by_runtime["cpu"].bytes_pushed > 0
    with pytest.raises(CheckFailed, match="1 of 3 deploy checks did not pass"):
        outcome.check()

    doc = json.loads(outcome.reports.json.read_text())
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["devices"][outcome.device]["ro.product.model"] == "Pixel 7"
    cpu = next(r for r in doc["results"] if r["runtime"] == "cpu")
    logits = cpu["outputs"][0]
    assert logits["metrics"]["cosine"] >= 0.999 and logits["limits"]["min_top1_agreement"] == 0.9
    assert logits["metrics"]["top1_accuracy"] == logits["metrics"]["reference_top1_accuracy"]
    assert cpu["latency"]["median_ms"] > 0 and cpu["latency"]["slowest_layers"]
    assert len(cpu["container_sha256"]) == 64 and cpu["container_kind"] == "float"
    cases = ET.parse(outcome.reports.junit).getroot().find("testsuite").findall("testcase")
    assert [c.get("name") for c in cases] == ["cpu", "gpu", "dsp"] and cases[2].find("error") is not None
    assert outcome.reports.folder.parent == tmp_path / "reports" and "pixel" in outcome.reports.folder.name

    if shutil.which("chromium"):
        dom = _chromium_dom(outcome.reports.html, tmp_path)
        assert dom.count('class="plot latency-plot"') == 2 and dom.count('class="plot error-plot"') == 2
        assert dom.count('class="plot layer-plot"') == 2

    # The same deploy again, through the command line: everything cached, nothing pushed. Without
    # --device, the deployment file's one `devices` entry (pixel) is the profile.
    env = {"EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"])}
    second = _cli("deploy", "--emulate", "--adb", adb, "--runtime", "cpu", "--runtime", "gpu",
                  "--report-dir", str(tmp_path / "again"), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    (folder,) = (tmp_path / "again").iterdir()
    again = json.loads((folder / "report.json").read_text())
    assert [r["bytes_pushed"] for r in again["results"]] == [0, 0]
    assert all(r["passed"] for r in again["results"]) and "passed" in second.stdout
    said = " ".join((second.stdout + second.stderr).split())
    assert "bundles kept from an earlier run" in said  # why 0 pushed
    reset = re.search(r"`invoke (emulator\.reset -n pixel)` empties it", said)
    assert reset, said
    emptied = _cli(*reset[1].split(), env=env)  # the command works as printed, and touches no build or report
    assert emptied.returncode == 0 and "deleted the state of pixel" in emptied.stdout, emptied.stderr
    assert folder.is_dir()
    assert folder.name.split("-", 1)[1].startswith("pixel-") and again["results"][0]["profile"] == "pixel"


def test_deploy_dsp_runs_the_quantized_container(adb_server, deploy_env, tmp_path: Path) -> None:
    outcome = deploy("pixel4", config_path=CONFIG, runtimes=["dsp"], adb=f"127.0.0.1:{adb_server.port}",
                     emulate=True, report_root=tmp_path)
    (result,) = outcome.results
    assert result.status == PASSED, result.failure
    assert result.container_kind == "quantized" and result.encodings
    # Quantization costs accuracy, and the DSP threshold (docs/spec.md §8: 0.98) is what it is judged by.
    logits = result.outputs[0]
    assert logits.limits.min_cosine == 0.98 and 0.98 <= logits.metrics.cosine < 1.0


def test_bad_input_is_one_line_with_exit_code_2(adb_server, deploy_env) -> None:
    with pytest.raises(EdgeloopError, match="profile 'pixel' has no dsp runtime") as info:
        deploy("pixel", config_path=CONFIG, runtimes=["dsp"], adb=f"127.0.0.1:{adb_server.port}")
    assert info.value.exit_code == 2 and info.value.hint.startswith("profiles with dsp: ")
    with_dsp = set(info.value.hint.removeprefix("profiles with dsp: ").split(", "))
    assert {"pixel4", "galaxy-s23"} <= with_dsp and "pixel" not in with_dsp
    env = {"EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"])}
    missing = _cli("deploy", "--device", "galaxy-s23", "--adb", f"127.0.0.1:{adb_server.port}", env=env)
    assert missing.returncode == 2
    line = missing.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert re.search(r"no device matches profile 'galaxy-s23' \(devices seen: .*\).*--emulate", line)



@pytest.mark.parametrize(("args", "message"), [
    (("deploy", "--device", "pixel", "--runs", "x"), "--runs expects a number, got 'x'"),
    (("deploy", "--device", "pixel", "--timeout", "0"), "--timeout must be a positive number"),
    (("deploy", "--device", "[/x]"), "unknown device profile '[/x]'"),  # text, not rich markup
    (("report.diff", "a.json", "b.json", "--latency-pct", "1O"), "--latency-pct expects a number"),
])
def test_bad_options_are_one_line_with_exit_code_2(args: tuple[str, ...], message: str, capsys) -> None:
    """The `edgeloop` program itself, run in this process (options are parsed before any device)."""
    from tasks import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["edgeloop", *args])
        with pytest.raises(SystemExit) as exited:
            main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and err.count("\n") == 1, err


def test_a_missed_threshold_fails_with_its_reason(adb_server, deploy_env, tmp_path: Path) -> None:
    text = CONFIG.read_text().replace("examples/", f"{ROOT}/examples/")
    limit = "      min_top1_agreement: 0.9"
    text = text.replace(limit, f"{limit}\n      gpu_fp16: {{min_sqnr_db: 120}}")
    config = tmp_path / "edgeloop.yaml"
    config.write_text(text)
    outcome = deploy("pixel", config_path=config, runtimes=["cpu", "gpu_fp16"], adb=f"127.0.0.1:{adb_server.port}",
                     emulate=True, report_root=tmp_path / "reports")
    cpu, fp16 = outcome.results
    assert cpu.status == PASSED  # the override is for gpu_fp16 only
    assert fp16.status == "failed" and fp16.outputs and not fp16.outputs[0].verdict.passed
    assert re.fullmatch(r"logits: SQNR \d+\.\d\d dB < 120(\.0)? dB", fp16.failure)
    with pytest.raises(CheckFailed, match=r"1 of 2 deploy checks did not pass \(digits/gpu_fp16\)"):
        outcome.check()
