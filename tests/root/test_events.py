"""The event log: what the engine did, as `docker events` reports it."""

from __future__ import annotations

import subprocess
import time

import pytest

from sdk import Engine, events
from tests.root.conftest import BERTH, Cli

pytestmark = pytest.mark.root


def test_container_lifecycle_events(engine: Engine, busybox: str) -> None:
    t0 = time.time()
    c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="ev",
                              network_mode="none", labels={"team": "a"})
    c.kill()
    c.wait(timeout=10)            # kill only sends the signal; the supervisor records the exit
    engine.containers.get("ev").rename("ev2")
    engine.containers.get("ev2").remove()
    engine.volumes.create("evvol").remove()
    msgs = list(events.stream(engine.db, since=t0, follow=False))
    actions = [(m["Type"], m["Action"]) for m in msgs]
    assert actions == [("container", "create"), ("container", "start"),
                       ("container", "kill"), ("container", "die"),
                       ("container", "rename"), ("container", "destroy"),
                       ("volume", "create"), ("volume", "destroy")]
    die = msgs[3]
    assert die["Actor"]["Attributes"]["exitCode"] == "137"
    assert die["Actor"]["Attributes"]["team"] == "a" and die["from"] == "busybox"
    only = list(events.stream(engine.db, since=t0, follow=False,
                              filters={"event": ["die"], "label": ["team=a"]}))
    assert [m["Action"] for m in only] == ["die"]


def test_cli_events_since_until_and_live(berth: Cli) -> None:
    start = str(time.time())
    assert berth("run", "--rm", "--network", "none", "busybox", "true").returncode == 0
    r = berth("events", "--since", start, "--until", str(time.time() + 0.5),
              "--filter", "type=container")
    lines = r.stdout.splitlines()
    assert [ln.split()[2] for ln in lines] == ["create", "start", "die", "destroy"], r.stderr
    assert "(exitCode=0, image=busybox, name=" in lines[2]
    # live: a follower sees a container created after it started
    proc = subprocess.Popen([BERTH, "events", "--format", "{{.Action}} {{.Type}}",
                             "--filter", "event=create"], env=berth.env,
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert berth("create", "--network", "none", "busybox").returncode == 0
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "create container"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
