"""pytest plugin: regression suites written as tests, on a leased device.

    pytest --edgeloop-device pixel --edgeloop-emulate           # an emulated pixel per xdist worker
    pytest --edgeloop-device pixel                              # matching phones on the local adb server
    pytest --edgeloop-inventory farm.yaml [--edgeloop-device P] # any (matching) device of a farm

Fixtures: `edgeloop_device` (a device leased for one test: never given to two tests, xdist workers
or farm runs at once) and `edgeloop_deploy` (runs the deploy loop of `--edgeloop-config` on it).
The plugin loads in every pytest run: without its options it touches nothing (no adb, no imports
beyond pytest) and its fixtures skip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import adbutils

    from deploy.profiles import Profile
    from harness.inventory import FarmDevice
    from harness.lease import Lease
    from harness.report.results import JobResult
    from harness.session import DeviceSession

LEASE_S = 3600.0
CONNECT_TIMEOUT_S = 20.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeloop", "edgeloop devices")
    group.addoption("--edgeloop-device", metavar="PROFILE", help="device profile the tests run on (e.g. pixel)")
    group.addoption("--edgeloop-emulate", action="store_true",
                    help="start an emulated device of --edgeloop-device (one per xdist worker)")
    group.addoption("--edgeloop-inventory", metavar="FARM_YAML", help="lease devices from this farm inventory")
    group.addoption("--edgeloop-config", metavar="EDGELOOP_YAML", default="edgeloop.yaml",
                    help="deployment file for the edgeloop_deploy fixture (default: edgeloop.yaml)")
    group.addoption("--edgeloop-lease-wait", metavar="SECONDS", type=float, default=600.0,
                    help="how long a test waits for a free device (default 600)")


@dataclass
class LeasedDevice:
    """A device held by one test, in a device session (its lease on the device too); `adb` is its
    adbutils handle."""

    device: FarmDevice
    profile: Profile
    lease: Lease
    session: DeviceSession

    @property
    def serial(self) -> str:
        return self.device.serial

    @property
    def adb(self) -> adbutils.AdbDevice:
        return self.device.adb()


def _local_devices(profile_name: str, emulate: bool, home: Path) -> Iterator[list[FarmDevice]]:
    """Devices on the local adb server ($ANDROID_ADB_SERVER_PORT or 5037) matching the profile;
    with `emulate`, one emulated device started for this session."""
    from deploy.errors import EdgeloopError
    from deploy.profiles import load_profile
    from harness.devices import DEVICE_FAILURES, connect, ensure_server, list_devices, parse_adb_address
    from harness.inventory import FarmDevice

    profile = load_profile(profile_name)
    server = parse_adb_address(None)
    client = ensure_server(server)
    if emulate:
        from emulator.lifecycle import emulated_device

        with emulated_device(str(profile.path), home=home) as device:  # a profile YAML given by path too
            connect(client, device.serial, timeout=CONNECT_TIMEOUT_S)
            try:
                yield [FarmDevice(server, device.serial, (profile.name,), model=profile.props["ro.product.model"])]
            finally:
                with contextlib.suppress(*DEVICE_FAILURES):  # a server that went away forgot it anyway
                    client.disconnect(device.serial)
        return
    found = [d for d in list_devices(client) if profile.matches(d.props)]
    if not found:
        raise EdgeloopError(f"no device on adb server {server.address} matches profile '{profile.name}'",
                            "connect one, or add --edgeloop-emulate")
    yield [FarmDevice(server, d.serial, (profile.name,), model=d.props.get("ro.product.model", "")) for d in found]


@pytest.fixture(scope="session")
def edgeloop_candidates(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[FarmDevice]]:
    """The devices this session (this xdist worker) may lease, found once."""
    profile = request.config.getoption("edgeloop_device")
    inventory = request.config.getoption("edgeloop_inventory")
    if not (profile or inventory):
        pytest.skip("no edgeloop device: pass --edgeloop-device PROFILE [--edgeloop-emulate] or --edgeloop-inventory")
    from deploy.errors import EdgeloopError
    from harness.inventory import discover, load_inventory

    try:
        if inventory:
            found = discover(load_inventory(Path(inventory)), [profile] if profile else None)
            if not found.devices:
                raise EdgeloopError(f"no device of {inventory} matches {profile or 'any profile'}",
                                    f"unreachable: {found.unreachable or 'none'}; unused: {found.unmatched or 'none'}")
            yield found.devices
        else:
            home = tmp_path_factory.mktemp("edgeloop-emulators")
            yield from _local_devices(profile, request.config.getoption("edgeloop_emulate"), home)
    except EdgeloopError as exc:
        pytest.fail(f"edgeloop: {exc}", pytrace=False)


@pytest.fixture
def edgeloop_device(request: pytest.FixtureRequest, edgeloop_candidates: list[FarmDevice]) -> Iterator[LeasedDevice]:
    """A device leased for this test; waits (up to --edgeloop-lease-wait) while all are busy."""
    from deploy.profiles import load_profile
    from harness.lease import LeaseBook
    from harness.session import server_session

    wait_s = request.config.getoption("edgeloop_lease_wait")
    keys = [d.key for d in edgeloop_candidates]
    lease = LeaseBook().acquire_any(keys, f"pytest:{request.node.nodeid}", lease_s=LEASE_S, wait_s=wait_s)
    if lease is None:
        pytest.fail(f"edgeloop: every device stayed leased for {wait_s:.0f} s: "
                    + ", ".join(d.name for d in edgeloop_candidates), pytrace=False)
    device = edgeloop_candidates[keys.index(lease.key)]
    profile = request.config.getoption("edgeloop_device") or device.profiles[0]
    with lease, server_session(device.server, device.serial, f"pytest:{request.node.nodeid}",
                               lease_timeout=wait_s) as session:
        yield LeasedDevice(device, load_profile(profile), lease, session)


Deploy = Callable[..., "list[JobResult]"]


@pytest.fixture
def edgeloop_deploy(request: pytest.FixtureRequest, edgeloop_device: LeasedDevice, tmp_path: Path) -> Deploy:
    """deploy(models=None, runtimes=None, runs=1, timeout=300) -> list[JobResult] on the leased device."""
    from deploy.config import load_config
    from harness.pipeline import plan, run_job

    config_path = request.config.invocation_params.dir / request.config.getoption("edgeloop_config")

    def deploy(models: list[str] | None = None, runtimes: list[str] | None = None, runs: int = 1,
               timeout: float = 300.0) -> list[Any]:
        jobs = plan(load_config(config_path), edgeloop_device.profile, models=models, runtimes=runtimes)
        return [run_job(job, edgeloop_device.session, runs=runs, timeout=timeout,
                        work_dir=tmp_path / job.name.replace("/", "_")) for job in jobs]

    return deploy
