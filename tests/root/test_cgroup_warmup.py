"""The helper's no-op cgroup migration: it leaves the process where it was, and while it
repeats, a container's first cgroup join does not wait for an RCU grace period."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from sdk.api import cli_runner
from sdk.api.forward import encode_request
from sdk.runtime import cgroup_warmup

pytestmark = pytest.mark.root


def test_warm_up_leaves_the_process_in_its_cgroups() -> None:
    own = Path("/proc/self/cgroup")
    before = own.read_text()
    path = cgroup_warmup.own_procs_file()
    assert path is not None and path.endswith("/cgroup.procs")
    assert cgroup_warmup.warm_up(path)
    assert own.read_text() == before
    assert str(os.getpid()) in Path(path).read_text().split()


def test_warm_up_without_a_file_does_nothing() -> None:
    assert cgroup_warmup.warm_up(None) is False
    assert cgroup_warmup.warm_up("/nonexistent/cgroup.procs") is False


@pytest.mark.parametrize("argv, starts", [
    (["run", "--rm", "busybox", "true"], True), (["start", "web"], True),
    (["exec", "web", "true"], True), (["restart", "web"], True),
    (["ps", "-a"], False), (["images"], False), (["runner"], False), ([], False),
])
def test_which_requests_start_a_container(argv: list[str], starts: bool) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(encode_request(argv, "/", {}))
        assert cli_runner._starts_a_container(b) is starts
        assert len(b.recv(65536)) > 4           # only peeked: the runner reads it all


def test_no_request_within_the_wait_is_no_container() -> None:
    a, b = socket.socketpair()
    with a, b:
        t = time.monotonic()
        assert cli_runner._starts_a_container(b) is False
        assert time.monotonic() - t < 1.0
