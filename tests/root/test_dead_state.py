"""docker's ``dead`` state: a container whose storage could not be removed keeps its
record as "dead", refuses to start, shows in ``ps --filter status=dead``, and a later
``rm`` finishes the job once the cause (here a busy mount in its upper dir) is gone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import Conflict, ContainerNotFound

from .conftest import Cli

pytestmark = pytest.mark.root


def test_failed_removal_marks_dead_and_rm_retries(engine: Engine, berth: Cli) -> None:
    c = engine.containers.create("busybox", ["true"], network_mode="none")
    upper = Path(c.attrs["GraphDriver"]["Data"]["UpperDir"])
    busy = upper / "busy"
    busy.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(busy)], check=True)
    try:
        res = berth("rm", c.id)
        assert res.returncode == 1
        assert f"unable to remove filesystem for {c.id}" in res.stderr
        c.reload()
        assert c.status == "dead" and c.attrs["State"]["Dead"] is True
        assert upper.is_dir(), "the storage went back in place for the next rm"
        listed = berth("ps", "-a", "-q", "--no-trunc", "--filter", "status=dead").stdout
        assert listed.split() == [c.id]
        assert "Dead" in berth("ps", "-a", "--format", "{{.Status}}").stdout
        with pytest.raises(Conflict, match="marked for removal and cannot be started"):
            c.start()
        res = berth("start", c.id)
        assert res.returncode == 1 and "marked for removal" in res.stderr
    finally:
        subprocess.run(["umount", str(busy)], check=False)
    assert berth("rm", c.id).returncode == 0
    with pytest.raises(ContainerNotFound):
        engine.containers.get(c.id)
    assert not upper.exists()
