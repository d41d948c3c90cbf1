"""Runtime packs: the built-in pack loads, schema errors are clear, and a new SDK pack written here
as data only (pack.yaml + template, with a fake SDK tree) produces the right bundle files,
environment and command line for two phones, without any code change."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from deploy.bundle import bundle
from deploy.errors import EdgeloopError
from deploy.packs import available_packs, load_pack, parse_pack
from deploy.profiles import load_profile
from tests.deploy.test_bundle import make_container, make_inputs

# A vendor-like pack: libraries per ABI, DSP skels per Hexagon arch, a net-run binary in the bundle,
# a host-side convert hook, and the docs/spec.md §4 environment.
SDK_PACK = """\
schema: 1
name: fakesdk
description: a vendor SDK laid out like SNPE 2.x
runs_on: {emulated: false, real: true}
abis: [arm64-v8a]
sdk:
  env: FAKESDK_ROOT
  layouts:
    - name: "2.x"
      detect: [lib/aarch64-android]
      vars: {arch_dir: {arm64-v8a: aarch64-android}}
container:
  kinds: [float, quantized]
  file: "model/{{ name }}.bin"
  convert:
    - ["{{ sdk_root }}/bin/to-bin", "{{ source }}", "{{ output }}"]
input_list: {format: named}
net_run:
  program: "bin/{{ vars.arch_dir[abi] }}/fake-net-run"
  args: [--container, "{{ container }}", --input_list, "{{ input_list }}"]
runtimes:
  cpu: {}
  gpu: {flags: [--use_gpu]}
  dsp: {flags: [--use_dsp]}
options:
  profiling_level: {default: "off", choices: ["off", basic, detailed], flags: [--profiling_level, "{{ value }}"]}
files:
  - {from: "bin/{{ vars.arch_dir[abi] }}/fake-net-run", to: "bin/{{ vars.arch_dir[abi] }}/", mode: "0755"}
  - {from: "lib/{{ vars.arch_dir[abi] }}/libX.so", to: lib/}
  - from: "lib/hexagon-{{ hexagon.arch }}/unsigned/libY.so"
    to: dsp/
    when: "runtime == 'dsp'"
    hint: "this SDK has no Hexagon {{ hexagon.arch }} libraries"
env:
  LD_LIBRARY_PATH: {paths: [lib], inherit: true}
  ADSP_LIBRARY_PATH:
    separator: ";"
    paths: [dsp]
    append: [/system/lib/rfsa/adsp, /system/vendor/lib/rfsa/adsp, /dsp]
    when: "runtime == 'dsp'"
outputs:
  timings: {format: fake-csv, path: diag.csv}
template: run.sh.j2
"""

TEMPLATE = """\
# {{ pack }} {{ runtime }} on {{ profile }}
{% for name, value in env %}
export {{ name }}={{ value }}
{% endfor %}
{{ command | join(" ") }} --output_dir "$@"
"""

# Stands in for the device's net-run: records its arguments and environment where outputs go.
FAKE_NET_RUN = """\
#!/bin/sh
while [ "$1" != "--output_dir" ]; do shift; done
mkdir -p "$2"
printf '%s\\n' "$@" > "$2/args.txt"
printf '%s\\n%s\\n' "$LD_LIBRARY_PATH" "$ADSP_LIBRARY_PATH" > "$2/env.txt"
"""

TO_BIN = "#!/bin/sh\ncp \"$1\" \"$2\"\n"  # the vendor converter: here a copy


@pytest.fixture
def sdk_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pack = tmp_path / "packs" / "fakesdk"
    pack.mkdir(parents=True)
    (pack / "pack.yaml").write_text(SDK_PACK)
    (pack / "run.sh.j2").write_text(TEMPLATE)
    sdk = tmp_path / "sdk-2.10.0"
    for rel, text in {"lib/aarch64-android/libX.so": "X", "lib/hexagon-v73/unsigned/libY.so": "Y",
                      "bin/aarch64-android/fake-net-run": FAKE_NET_RUN, "bin/to-bin": TO_BIN}.items():
        (sdk / rel).parent.mkdir(parents=True, exist_ok=True)
        (sdk / rel).write_text(text)
    (sdk / "bin/to-bin").chmod(0o755)
    monkeypatch.setenv("FAKESDK_ROOT", str(sdk))
    monkeypatch.setenv("EDGELOOP_PACKS", str(tmp_path / "packs"))
    return sdk


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    return make_container(src), make_inputs(src, lines=1)


def test_builtin_pack_loads() -> None:
    pack = load_pack("builtin")
    assert "builtin" in available_packs()
    assert set(pack.runtimes) == {"cpu", "gpu", "gpu_fp16", "dsp", "aip"}
    assert pack.runtimes["aip"][1] == ("quantized",) and pack.timings_format == "edgeloop-diag"
    pack.check_device(emulated=True)
    with pytest.raises(EdgeloopError, match=r"cannot run on a real device.*SNPE_ROOT"):
        pack.check_device(emulated=False)


def test_sdk_pack_on_htp_phone(sdk_pack: Path, project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    made = bundle(container, load_profile("galaxy-s23"), "dsp", inputs, pack="fakesdk", root=tmp_path / "b",
                  options={"profiling_level": "detailed"})
    paths = {f["path"]: f["mode"] for f in made.manifest}
    assert paths == {"bin/aarch64-android/fake-net-run": "0755", "dsp/libY.so": "0644", "lib/libX.so": "0644",
                     "model/branchy_float.bin": "0644", "input_list.txt": "0644", "run.sh": "0755",
                     "inputs/0/left.raw": "0644", "inputs/0/right.raw": "0644"}
    assert (made.path / "model/branchy_float.bin").read_bytes() == container.read_bytes()  # the convert hook ran
    assert json.loads((made.path / "manifest.json").read_text())["sdk"] == {"layout": "2.x", "version": "2.10.0"}
    script = (made.path / "run.sh").read_text()
    assert 'export LD_LIBRARY_PATH="$PWD/lib:$LD_LIBRARY_PATH"' in script
    assert 'export ADSP_LIBRARY_PATH="$PWD/dsp;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp"' in script
    assert ("bin/aarch64-android/fake-net-run --container model/branchy_float.bin --input_list input_list.txt "
            '--use_dsp --profiling_level detailed --output_dir "$@"') in script
    assert made.timings_format == "fake-csv" and made.timings_path == "diag.csv"

    # The run contract, executed by a real sh: `cd <bundle> && sh run.sh <output_dir> [extra args]`.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "ADSP_LIBRARY_PATH")}
    subprocess.run(["sh", "run.sh", "runs/r1", "--debug"], cwd=made.path, check=True, env=env, timeout=30)
    args = (made.path / "runs/r1/args.txt").read_text().split()
    assert args == ["--output_dir", "runs/r1", "--debug"]
    ld, adsp = (made.path / "runs/r1/env.txt").read_text().splitlines()
    assert ld == f"{made.path}/lib:" and adsp.startswith(f"{made.path}/dsp;/system/lib/rfsa/adsp;")


def test_sdk_pack_on_phone_without_that_hexagon(sdk_pack: Path, project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    made = bundle(container, load_profile("pixel4"), "gpu", inputs, pack="fakesdk", root=tmp_path / "b")
    assert not any(f["path"].startswith("dsp/") for f in made.manifest)
    script = (made.path / "run.sh").read_text()
    assert "ADSP_LIBRARY_PATH" not in script and "--use_gpu --profiling_level off" in script
    with pytest.raises(EdgeloopError, match=r"no file matches \$FAKESDK_ROOT/lib/hexagon-v66/unsigned/libY\.so.*"
                                            r"no Hexagon v66 libraries"):
        bundle(container, load_profile("pixel4"), "dsp", inputs, pack="fakesdk", root=tmp_path / "b")


def test_sdk_pack_needs_its_sdk(sdk_pack: Path, project: tuple[Path, Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    container, inputs = project
    monkeypatch.delenv("FAKESDK_ROOT")
    with pytest.raises(EdgeloopError, match=r"pack 'fakesdk' needs its SDK \(set FAKESDK_ROOT or pass --sdk PATH\)"):
        bundle(container, load_profile("galaxy-s23"), "cpu", inputs, pack="fakesdk", root=tmp_path / "b")
    made = bundle(container, load_profile("galaxy-s23"), "cpu", inputs, pack="fakesdk", root=tmp_path / "b",
                  sdk=sdk_pack)
    assert (made.path / "lib/libX.so").read_text() == "X"
    (sdk_pack / "lib/aarch64-android/libX.so").unlink()
    (sdk_pack / "lib/aarch64-android").rmdir()
    with pytest.raises(EdgeloopError, match="not a known fakesdk SDK layout"):
        bundle(container, load_profile("galaxy-s23"), "cpu", inputs, pack="fakesdk", root=tmp_path / "b",
               sdk=sdk_pack)


def test_failing_convert_hook_leaves_nothing(sdk_pack: Path, project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    (sdk_pack / "bin/to-bin").write_text("#!/bin/sh\necho 'converting' && echo 'unsupported op Det' >&2 && exit 3\n")
    with pytest.raises(EdgeloopError, match=r"pack 'fakesdk': to-bin failed \(exit 3\): unsupported op Det"):
        bundle(container, load_profile("galaxy-s23"), "cpu", inputs, pack="fakesdk", root=tmp_path / "b")
    leftovers = [p for p in (tmp_path / "b").rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("  gpu: {flags: [--use_gpu]}", "  gpu: {flag: [--use_gpu]}", 23,
     r"runtimes\.gpu\.flag: unknown key \(did you mean 'flags'\?"),
    ("  gpu: {flags", "  gpx: {flags", 23, r"runtimes\.gpx: unknown key \(did you mean 'gpu'\?"),
    ("name: fakesdk", "nme: fakesdk", 2, r"nme: unknown key \(did you mean 'name'\?"),  # not 'name' missing
    ('mode: "0755"', 'mode: "rwx"', 28, r"files\[0\]\.mode: 'rwx' is not of the expected form \(a file mode, "
                                        r"written as a quoted octal string such as \"0755\"\)"),
    ('mode: "0755"', "mode: 0755", 28, r"files\[0\]\.mode: must be a string, got 493"),  # YAML's octal 0755
    ("to: lib/}", "to: ../lib/}", 29, r"files\[1\]\.to: '\.\./lib/' must be a relative path inside the bundle"),
    ("to: lib/}", "to: run.sh}", 29, r"files\[1\]\.to: 'run\.sh' is written by the bundler itself"),
    ("to: lib/}", "to: ./}", 29, r"files\[1\]\.to: '\./' is the bundle folder itself"),
    ("when: \"runtime == 'dsp'\"\n    hint", "when: \"runtime ==\"\n    hint", 32, r"files\[2\]\.when: template error"),
    ("schema: 1", "schema: 2", 1, r"schema: must be 1, got 2 \(this edgeloop reads pack schema 1\)"),
    ("template: run.sh.j2", "template: missing.j2", 43, r"template: template not found"),
    ("kinds: [float, quantized]", "kinds: floaty", 13,
     r"container\.kinds: unknown value 'floaty' \(did you mean 'float'\? known: float, quantized\)"),
    ('default: "off"', 'default: "loud"', 26,
     r"options\.profiling_level\.default: unknown value 'loud' \(known: basic, detailed, off\)"),
    ('default: "off"', "default: off", 26, r"default: must be a string or a number or empty, got false \(quote"),
    ("  LD_LIBRARY_PATH:", "  LD-LIBRARY_PATH:", 35,
     r"env\.LD-LIBRARY_PATH: 'LD-LIBRARY_PATH' is not of the expected form \(an environment variable name"),
    ("append: [/system/lib/rfsa/adsp", "append: [system/lib/rfsa/adsp", 39,
     r"env\.ADSP_LIBRARY_PATH\.append\[0\]: 'system/lib/rfsa/adsp' is not of the expected form \(an absolute"),
    ("  env: FAKESDK_ROOT", "  env: FAKESDK_ROOT\n  version_regex: '(['", 8,
     r"sdk\.version_regex: '\(\[' is not a regular expression \(unterminated character set"),
    ('"{{ source }}", "{{ output }}"]', '"{{ source }}", 7]', 16,
     r"container\.convert\[0\]\[2\]: must be a string, got 7"),
    ("runtimes:\n  cpu: {}\n  gpu: {flags: [--use_gpu]}\n  dsp: {flags: [--use_dsp]}", "runtimes: {}", 21,
     r"runtimes: must not be empty \(at least one runtime"),
    ("path: diag.csv", "path: /diag.csv", 42, r"outputs\.timings\.path: '/diag\.csv' must be a relative path"),
])
def test_schema_errors_are_clear(tmp_path: Path, old: str, new: str, line: int, expected: str) -> None:
    """Each problem is one line naming the pack file, the line and the key (SCHEMA, or a check in code)."""
    assert old in SDK_PACK
    (tmp_path / "pack.yaml").write_text(SDK_PACK.replace(old, new))
    (tmp_path / "run.sh.j2").write_text(TEMPLATE)
    with pytest.raises(EdgeloopError, match=expected) as info:
        parse_pack(tmp_path / "pack.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'pack.yaml'}:{line}: "), str(info.value)


@pytest.mark.parametrize(("old", "new"), [
    ("  gpu: {flags: [--use_gpu]}", "  gpu: {flag: [--use_gpu]}"), ('mode: "0755"', 'mode: "rwx"'),
    ("to: lib/}", "to: run.sh}"), ("kinds: [float, quantized]", "kinds: floaty"),
])
def test_documented_messages_are_what_the_code_says(tmp_path: Path, old: str, new: str) -> None:
    """Each message docs/runtime-packs.md shows comes from this file's pack with that one mistake."""
    doc = (Path(__file__).resolve().parents[2] / "docs/runtime-packs.md").read_text()
    (tmp_path / "pack.yaml").write_text(SDK_PACK.replace(old, new))
    (tmp_path / "run.sh.j2").write_text(TEMPLATE)
    with pytest.raises(EdgeloopError) as info:
        parse_pack(tmp_path / "pack.yaml")
    assert f"\n{str(info.value).replace(f'{tmp_path}/', '')}\n" in doc


def test_one_value_stands_for_a_list(tmp_path: Path) -> None:
    """`kinds: float` as `kinds: [float]`, as edgeloop.yaml's `runtimes: cpu`."""
    (tmp_path / "pack.yaml").write_text(SDK_PACK.replace("kinds: [float, quantized]", "kinds: float")
                                        .replace("abis: [arm64-v8a]", "abis: arm64-v8a"))
    (tmp_path / "run.sh.j2").write_text(TEMPLATE)
    pack = parse_pack(tmp_path / "pack.yaml")
    assert pack.container_kinds == ("float",) and pack.abis == ("arm64-v8a",)
    assert pack.options["profiling_level"].default == "off" and pack.env[1].separator == ";"


def test_unknown_pack_name() -> None:
    with pytest.raises(EdgeloopError, match=r"unknown runtime pack 'bultin' \(did you mean 'builtin'\?"):
        load_pack("bultin")


def test_template_syntax_error_names_the_template(tmp_path: Path) -> None:
    (tmp_path / "pack.yaml").write_text(SDK_PACK)
    (tmp_path / "run.sh.j2").write_text(textwrap.dedent("ok\n{% for x in %}\n"))
    with pytest.raises(EdgeloopError, match=r"run\.sh\.j2:2: template error"):
        parse_pack(tmp_path / "pack.yaml")


def test_undefined_template_variable_is_a_clear_error(sdk_pack: Path, project: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    container, inputs = project
    (tmp_path / "packs/fakesdk/run.sh.j2").write_text(TEMPLATE + "{{ netrun_extra }}\n")
    with pytest.raises(EdgeloopError, match=r"run\.sh\.j2: cannot render the template: 'netrun_extra' is undefined"):
        bundle(container, load_profile("galaxy-s23"), "cpu", inputs, pack="fakesdk", root=tmp_path / "b")
