"""An exec inherits the container's privileged mode, as docker's does."""

from __future__ import annotations

import pytest

from sdk import Engine

pytestmark = pytest.mark.root


def _status(output: bytes, key: str) -> str:
    for line in output.decode().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} missing")


def test_exec_in_privileged_container_is_privileged(engine: Engine, busybox: str) -> None:
    priv = engine.containers.run("busybox", ["sleep", "30"], detach=True, privileged=True,
                                 network_mode="none")
    plain = engine.containers.run("busybox", ["sleep", "30"], detach=True,
                                  network_mode="none")
    try:
        out = priv.exec_run(["cat", "/proc/self/status"]).output
        assert _status(out, "Seccomp") == "0"
        assert int(_status(out, "CapEff"), 16) == int(
            _status(priv.exec_run(["cat", "/proc/1/status"]).output, "CapEff"), 16)
        out = plain.exec_run(["cat", "/proc/self/status"]).output
        assert _status(out, "Seccomp") == "2"
    finally:
        priv.remove(force=True)
        plain.remove(force=True)
