"""Ctrl-C while a C extension is being imported (onnxruntime: `ImportError: initialization failed`) is an
interruption, exit 130, not an internal error (a deploy stopped 0.9 s in said "internal error")."""

from __future__ import annotations

import signal

import pytest

from harness.console import user_errors


def test_ctrl_c_turned_into_an_import_error_is_still_an_interruption(capsys) -> None:
    @user_errors
    def task(c) -> None:
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None  # what pybind11's module init does

    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as info:
            task(None)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert info.value.code == 130 and capsys.readouterr().err == "interrupted\n"
