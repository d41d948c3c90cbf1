"""Device discovery: address parsing, getprop parsing, several matches, and no stray adb server."""

import socket
from pathlib import Path

import numpy as np
import pytest

from deploy.config import load_config
from deploy.convert import convert
from deploy.errors import DeviceError, EdgeloopError
from deploy.profiles import load_profile
from harness.devices import AdbServer, ensure_server, find_device, parse_adb_address, parse_getprop
from harness.reference import compute_reference, reference_outputs
from tests.harness.conftest import CONFIG


def test_adb_address_forms(monkeypatch) -> None:
    monkeypatch.delenv("ANDROID_ADB_SERVER_PORT", raising=False)
    assert parse_adb_address(None) == AdbServer("127.0.0.1", 5037)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "6000")
    assert parse_adb_address(None).port == 6000
    assert parse_adb_address("10.0.0.2:5038") == AdbServer("10.0.0.2", 5038)
    assert parse_adb_address("7000") == AdbServer("127.0.0.1", 7000)
    for bad in ("host:", "host:abc", "host:70000"):
        with pytest.raises(EdgeloopError, match="bad adb server address"):
            parse_adb_address(bad)


def test_getprop_output_is_parsed_with_empty_values_and_brackets() -> None:
    text = "[ro.product.model]: [Pixel 7]\n[ro.product.cpu.abilist32]: []\n[x.y]: [a [b] c]\ngarbage\n"
    assert parse_getprop(text) == {"ro.product.model": "Pixel 7", "ro.product.cpu.abilist32": "", "x.y": "a [b] c"}


def test_a_remote_server_that_does_not_answer_is_not_started_elsewhere() -> None:
    """127.0.0.2 is loopback but not this host's adb address: treated as another machine, whose server
    edgeloop must not try to start (nor may adbutils start one on 5037 behind our back)."""
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.2", 0))
        port = sock.getsockname()[1]
        with pytest.raises(DeviceError, match=r"no adb server answers at 127\.0\.0\.2"):
            ensure_server(AdbServer("127.0.0.2", port))


def test_ensure_server_reaches_a_running_server(adb_server) -> None:
    client = ensure_server(AdbServer("127.0.0.1", adb_server.port))
    assert client.server_version() > 0


def test_several_matching_devices_need_a_serial(adb_server, start_emulated) -> None:
    first, second = start_emulated("generic-arm64"), start_emulated("generic-arm64")
    with pytest.raises(EdgeloopError, match=r"\d+ devices match profile 'generic-arm64'") as info:
        find_device(adb_server.client, load_profile("generic-arm64"))
    assert first.serial in info.value.message and second.serial in info.value.message
    assert "--serial" in info.value.hint
    assert find_device(adb_server.client, load_profile("generic-arm64"), serial=second.serial).serial == second.serial


def test_reference_is_cached_by_content(deploy_env, tmp_path: Path) -> None:
    model = load_config(CONFIG).models["digits"]
    container = convert(model.source, input_dims=model.input_dims, out_nodes=model.out_nodes).path
    first, hit = reference_outputs(container, model.input_list, root=tmp_path)
    assert not hit
    again, hit = reference_outputs(container, model.input_list, root=tmp_path)
    assert hit
    fresh = compute_reference(container, model.input_list)[1]
    for name, arrays in fresh.items():
        assert len(arrays) == len(first[name]) == len(again[name]) > 1
        assert all(np.array_equal(a, b) for a, b in zip(arrays, again[name], strict=True))
    # Same content under another path: still a hit (the key holds hashes, not paths).
    copy = tmp_path / "elsewhere.onnx"
    copy.write_bytes(Path(container).read_bytes())
    assert reference_outputs(copy, model.input_list, root=tmp_path)[1]


def test_path_batches_respect_the_command_budget() -> None:
    from harness.transfer import batches, shell_quote

    paths = [f"Result_{i}/logits.raw" for i in range(500)] + ["x" * 5000]
    groups = batches(paths, budget=3000)
    assert [p for g in groups for p in g] == paths  # every path once, in order
    assert all(sum(len(shell_quote(p)) + 1 for p in g) <= 3000 for g in groups[:-1])
    assert groups[-1] == ["x" * 5000] and len(groups) > 2
    assert batches([]) == []
