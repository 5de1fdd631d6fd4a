"""The event log: what the engine did, as `docker events` reports it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from sdk import Engine, events
from sdk.errors import SdkError
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


# ---- network events (issue 6) --------------------------------------------------------
def test_network_events(engine: Engine, busybox: str) -> None:
    """docker's shape: Type network, Actor ID = network id, Attributes name and type
    (+ container on connect/disconnect); a start connects, a stop disconnects."""
    t0 = time.time()
    net = engine.networks.create("evnet", ipam={"Config": [{"Subnet": "10.213.21.0/24"}]})
    try:
        c = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="evn",
                                  network="evnet", cgroup_parent="berth-evtest")
        other = engine.containers.run("busybox", ["sleep", "30"], detach=True, name="evo",
                                      cgroup_parent="berth-evtest")     # default bridge
        engine.networks.service.connect("evnet", "evo")       # live: connect now
        engine.networks.service.disconnect("evnet", "evo")
        other.remove(force=True)
        c.kill()
        c.wait(timeout=10)
        deadline = time.monotonic() + 5     # the supervisor releases right after the exit
        while engine.db.one("SELECT 1 FROM net_leases WHERE container_id=?", (c.id,)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        c.remove()
        net.remove()
        msgs = list(events.stream(engine.db, since=t0, follow=False,
                                  filters={"network": [net.id]}))
        assert [(m["Action"], m["Actor"]["Attributes"].get("container")) for m in msgs] == [
            ("create", None), ("connect", c.id), ("connect", other.id),
            ("disconnect", other.id), ("disconnect", c.id), ("destroy", None)]
        assert {m["Type"] for m in msgs} == {"network"}
        assert {m["Actor"]["ID"] for m in msgs} == {net.id}
        assert msgs[0]["Actor"]["Attributes"] == {"name": "evnet", "type": "bridge"}
        assert msgs[1]["Actor"]["Attributes"] == {"container": c.id, "name": "evnet",
                                                  "type": "bridge"}
        assert msgs[-1]["Actor"]["Attributes"] == {"name": "evnet", "type": "bridge"}
        # the network filter matches by name too; the default bridge has its events
        by_name = list(events.stream(engine.db, since=t0, follow=False,
                                     filters={"network": ["evnet"]}))
        assert len(by_name) == len(msgs)
        bridge = [m["Action"] for m in events.stream(engine.db, since=t0, follow=False,
                                                     filters={"network": ["bridge"]})]
        assert bridge == ["connect", "disconnect"]
        # the order against container events is docker's: connect before start,
        # disconnect after die
        seq = [(m["Type"], m["Action"]) for m in events.stream(engine.db, since=t0,
                                                                 follow=False)]
        assert seq.index(("network", "connect")) < seq.index(("container", "start"))
        assert seq.index(("container", "die")) < len(seq) - 1 - seq[::-1].index(
            ("network", "disconnect"))
    finally:
        for doc in engine.tasks.all():
            engine.tasks.remove(doc["Id"], force=True)
        try:
            engine.networks.get("evnet").remove()
        except Exception:   # noqa: BLE001 - removed above
            pass
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            try:
                (hierarchy / "berth-evtest").rmdir()
            except OSError:
                pass


def test_network_create_failure_leaves_no_event(engine: Engine, busybox: str) -> None:
    t0 = time.time()
    with pytest.raises(SdkError):
        engine.networks.create("evbad", ipam={"Config": [{"Subnet": "10.213.0.0/33"}]})
    assert list(events.stream(engine.db, since=t0, follow=False,
                              filters={"type": ["network"]})) == []
