"""icc (inter-container communication) on the real kernel: daemon.json's "icc" on the
default bridge, -o com.docker.network.bridge.enable_icc on user networks, --link
openings, reconciliation after a daemon.json change, and bad network input that must
change nothing.

Every engine has a private data root, so its bridge is its own br-<id> on a subnet the
engine picks clear of the host's routes.  Traffic goes only to containers these tests
start, to the host's 127.0.0.1 and to a "test host" namespace on a 198.18.x.0/30 veth.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk.network.netlink import Netlink
from tests.root.test_network import test_host  # noqa: F401, F811 - a shared fixture

pytestmark = pytest.mark.root
PARENT = "berth-icctest"        # a private cgroup parent (see test_network.py)


@pytest.fixture(scope="module", autouse=True)
def _private_cgroup_parent() -> Iterator[None]:
    yield
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / PARENT).rmdir()
        except OSError:
            pass


def _engine(tmp_path: Path, config: dict[str, Any]) -> Engine:
    (tmp_path / "daemon.json").write_text(json.dumps(config))
    return Engine(root=tmp_path / "root", config=tmp_path / "daemon.json")


@pytest.fixture
def engines(tmp_path: Path, busybox_tar: Path) -> Iterator[list[Engine]]:
    """Engines on one private data root (a "restart" opens another); all cleaned up."""
    opened: list[Engine] = []
    yield opened
    if opened:
        last = opened[-1]
        for doc in last.tasks.all():
            try:
                last.tasks.remove(doc["Id"], force=True, volumes=True)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        for net in last.networks.service.list():
            if net["name"] not in ("bridge", "host", "none"):
                last.networks.service.remove(net["id"])
        last.repair()
    for eng in opened:
        eng.close()


def _open(engines: list[Engine], tmp_path: Path, busybox_tar: Path,
          config: dict[str, Any]) -> Engine:
    eng = _engine(tmp_path, config)
    if not engines:
        eng.images.import_image(str(busybox_tar), repository="busybox", tag="latest")
    engines.append(eng)
    return eng


def _run(engine: Engine, *args: Any, **kw: Any) -> Any:
    kw.setdefault("cgroup_parent", PARENT)
    return engine.containers.run(*args, **kw)


def _saved() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def _tagged(tag: str) -> list[str]:
    return [ln for ln in _saved().splitlines() if f'"{tag}"' in ln or f" {tag} " in ln]


def _same_bridge(bridge: str) -> list[str]:
    """berth's rules for traffic from ``bridge`` back into it (icc ACCEPT or DROP)."""
    return [ln for ln in _tagged(f"berth:net:{bridge}")
            if re.match(rf"-A BERTH-FORWARD -i {re.escape(bridge)} -o {re.escape(bridge)} ",
                        ln)]


def _talks(client: Any, ip: str, port: int = 80) -> bool:
    """A new TCP connection from ``client`` to ip:port gets an HTTP answer."""
    res = client.exec_run(["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | "
                                       f"nc -w 2 {ip} {port}"])
    return b"HTTP/1" in res.output


def _wait_talks(client: Any, ip: str, port: int = 80) -> bool:
    for _ in range(20):                       # httpd may still be starting
        if _talks(client, ip, port):
            return True
        time.sleep(0.1)
    return False


def _http_get(host: str, port: int, timeout: float = 3.0) -> bytes:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return s.recv(100)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_from(pid: int, host: str, port: int) -> str:
    code = ("import socket,sys\n"
            f"s=socket.create_connection(({host!r},{port}),timeout=3)\n"
            "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n');sys.stdout.write(s.recv(60).decode())")
    res = subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=10)
    return res.stdout + res.stderr


def test_icc_false_default_bridge_ports_and_links(
        engines: list[Engine], tmp_path: Path, busybox_tar: Path,
        test_host: tuple[int, str]) -> None:  # noqa: F811
    eng = _open(engines, tmp_path, busybox_tar, {"icc": False})
    port = _free_port()
    web = _run(eng, "busybox", ["httpd", "-f", "-p", "80"], detach=True, name="web",
               ports={"80/tcp": port}, expose=["80"])
    client = _run(eng, "busybox", ["sleep", "60"], detach=True, name="client")
    net = eng.networks.service.get("bridge")
    bridge, subnet = net["bridge"], net["subnet"]
    web.reload()
    ip = web.attrs["NetworkSettings"]["IPAddress"]

    same = _same_bridge(bridge)
    assert len(same) == 1 and same[0].endswith("-j DROP"), same
    assert eng.networks.service.inspect("bridge")["Options"][
        "com.docker.network.bridge.enable_icc"] == "false"
    assert not _talks(client, ip)                       # container to container: dropped
    # ...but a container may use the published port, through the host (hairpin)
    gateway = net["doc"]["IPAM"]["Config"][0]["Gateway"]
    assert _talks(client, gateway, port)
    # published ports still answer: from the host's 127.0.0.1 and from another host
    assert _http_get("127.0.0.1", port).startswith(b"HTTP/1")
    pid, host_ip = test_host
    assert _get_from(pid, host_ip, port).startswith("HTTP/1")
    # the way out is untouched (read from the rules, no traffic leaves the host)
    rules = _tagged(f"berth:net:{bridge}")
    assert any(f"-s {subnet} ! -o {bridge}" in r and "MASQUERADE" in r for r in rules)
    assert any(r.startswith(f"-A BERTH-FORWARD -i {bridge} -m comment") and
               r.endswith("-j ACCEPT") for r in rules)

    # --link opens the target's exposed ports to the linking container, both ways only
    linked = _run(eng, "busybox", ["sleep", "60"], detach=True, links={"web": "site"})
    assert len(_tagged(f"berth:{linked.id}")) == 2
    assert _wait_talks(linked, "site")
    assert not _talks(client, ip)
    linked.remove(force=True)
    assert _tagged(f"berth:{linked.id}") == []

    for c in (web, client):
        c.remove(force=True)
    eng.repair()                                 # the idle bridge goes, with its rules
    assert _tagged(f"berth:net:{bridge}") == [] and _tagged(f"berth:{web.id}") == []


def test_icc_change_in_daemon_json_is_reconciled(engines: list[Engine], tmp_path: Path,
                                                 busybox_tar: Path) -> None:
    eng = _open(engines, tmp_path, busybox_tar, {})
    web = _run(eng, "busybox", ["httpd", "-f", "-p", "80"], detach=True, name="web")
    client = _run(eng, "busybox", ["sleep", "60"], detach=True, name="client")
    bridge = eng.networks.service.get("bridge")["bridge"]
    web.reload()
    ip = web.attrs["NetworkSettings"]["IPAddress"]
    before = len(_tagged(f"berth:net:{bridge}"))
    assert [r.endswith("-j ACCEPT") for r in _same_bridge(bridge)] == [True]
    assert _wait_talks(client, ip)

    # the engine service restarts with icc false: its repair reconciles the running bridge
    restarted = _open(engines, tmp_path, busybox_tar, {"icc": False})
    assert any("rules of bridge" in d for d in restarted.repair())
    assert [r.endswith("-j DROP") for r in _same_bridge(bridge)] == [True]
    assert not _talks(restarted.containers.get("client"), ip)

    # embedded use (no service): the next start notices daemon.json changed back
    embedded = _open(engines, tmp_path, busybox_tar, {"icc": True})
    _run(embedded, "busybox", ["true"], remove=True)
    assert [r.endswith("-j ACCEPT") for r in _same_bridge(bridge)] == [True]
    assert _talks(embedded.containers.get("client"), ip)
    assert len(_tagged(f"berth:net:{bridge}")) == before


def test_user_network_enable_icc_option(engines: list[Engine], tmp_path: Path,
                                        busybox_tar: Path) -> None:
    eng = _open(engines, tmp_path, busybox_tar, {})
    name = "ic" + secrets.token_hex(3)
    net = eng.networks.create(name, options={"com.docker.network.bridge.enable_icc": "0",
                                             "com.docker.network.bridge.enable_ip_masquerade":
                                             "false", "com.docker.network.driver.mtu": "1400"})
    bridge = net.attrs["Options"]["com.docker.network.bridge.name"]
    assert net.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert not any("! -o" in r and "MASQUERADE" in r for r in _tagged(f"berth:net:{bridge}"))
    web = _run(eng, "busybox", ["httpd", "-f", "-p", "80"], detach=True, name="uweb",
               network=name)
    client = _run(eng, "busybox", ["sleep", "60"], detach=True, network=name)
    assert [r.endswith("-j DROP") for r in _same_bridge(bridge)] == [True]
    assert not _talks(client, "uweb")              # names resolve, traffic is dropped
    assert client.exec_run(["cat", "/sys/class/net/eth0/mtu"]).output.strip() == b"1400"
    # the default bridge of the same engine keeps icc (daemon.json's default: true)
    other = _run(eng, "busybox", ["sleep", "60"], detach=True)
    default = eng.networks.service.get("bridge")["bridge"]
    assert [r.endswith("-j ACCEPT") for r in _same_bridge(default)] == [True]
    for c in (web, client, other):
        c.remove(force=True)
    net.remove()
    assert _tagged(f"berth:net:{bridge}") == []


def test_iptables_false_leaves_rules_alone(engines: list[Engine], tmp_path: Path,
                                           busybox_tar: Path) -> None:
    eng = _open(engines, tmp_path, busybox_tar, {"icc": False, "iptables": False})
    saved = _saved().count("berth:net:")
    c = _run(eng, "busybox", ["sleep", "30"], detach=True)
    bridge = eng.networks.service.get("bridge")["bridge"]
    assert _tagged(f"berth:net:{bridge}") == [] and _saved().count("berth:net:") == saved
    c.remove(force=True)


def _state(engine: Engine) -> tuple[Any, ...]:
    """What a bad command could leak, limited to this engine (other engines run on the
    host meanwhile): its bridges and what is plugged into them, network records, leases,
    held ports, and rules of its bridges or of bridges that do not exist."""
    with Netlink() as nl:
        links = nl.links()
        ours = {link.index for link in links if link.alias == f"berth:{engine.db.path}"}
        names = {link.name for link in links}
        devices = sorted(link.name for link in links
                         if link.index in ours or link.master in ours)
    db = engine.db
    bridges = {r["bridge"] for r in db.query("SELECT bridge FROM networks")}
    rules = sorted(ln for ln in _saved().splitlines()
                   for tag in re.findall(r"berth:net:([^\" ]+)", ln)
                   if tag in bridges or tag not in names)
    return (devices, [r["name"] for r in db.query("SELECT name FROM networks ORDER BY name")],
            db.one("SELECT COUNT(*) AS n FROM net_leases")["n"],
            db.one("SELECT COUNT(*) AS n FROM net_ports")["n"], rules)


def test_bad_network_input_is_one_line_and_changes_nothing(berth: Any, engine: Engine,
                                                          tmp_path: Path) -> None:
    run = berth
    name = "bi" + secrets.token_hex(3)
    assert run("network", "create", "--subnet", "10.219.4.0/24", name).returncode == 0
    none = run("create", "--network", "none", "busybox", "true").stdout.strip()
    neighbour = Engine(root=tmp_path / "other", config=tmp_path / "other.json")
    other = neighbour.networks.service.get("bridge")["bridge"]     # another engine's
    before = _state(engine)
    cases = [
        (("network", "create", "--subnet", "10.219.300.0/24", name + "a"), "subnet"),
        (("network", "create", "--subnet", "10.219.4.0/23", name + "b"), "overlaps"),
        (("network", "create", "--subnet", "10.219.5.7/24", name + "b"), "10.219.5.0/24"),
        (("network", "create", "--subnet", "10.219.5.0/24", "--gateway", "10.219.5.0",
          name + "b"), "network or broadcast"),
        (("network", "create", "--subnet", "10.219.5.0/24", "--gateway", "10.219.6.1",
          name + "c"), "gateway"),
        (("network", "create", "-o", "com.docker.network.bridge.enable_icc=nope",
          name + "d"), "enable_icc"),
        (("network", "create", "-o", "com.docker.network.bridge.enable-icc=false",
          name + "e"), "not supported"),
        (("network", "create", "-o", "com.docker.network.driver.mtu=12", name + "f"),
         "MTU"),
        (("network", "create", "-o", "com.docker.network.bridge.name=lo", name + "g"),
         "device of that name exists"),
        (("network", "create", "-o", "novalue", name + "h"), "key=value"),
        (("network", "create", "-o", f"com.docker.network.bridge.name={other}", name + "i"),
         "belongs to the berth engine"),
        (("network", "create", name), "already exists"),
        (("network", "connect", "nosuchnet", none), "not found"),
        (("network", "connect", name, "nosuchcontainer"), "nosuchcontainer"),
        (("network", "connect", name, none), "network mode none"),
        (("network", "connect", "--ip", "10.219.9.9", name, none), "network mode none"),
        (("run", "--rm", "-p", "0:80", "busybox", "true"), "between 1 and 65535"),
        (("run", "--rm", "-p", "80:70000", "busybox", "true"), "between 1 and 65535"),
        (("run", "--rm", "-p", "80/icmp", "busybox", "true"), "protocol"),
        (("run", "--rm", "--network", name, "--ip", "10.219.5.9", "busybox", "true"),
         "not in the subnet"),
        (("run", "--rm", "--network", "nosuchnet", "busybox", "true"), "not found"),
        (("network", "rm", "nosuchnet"), "not found"),
    ]
    try:
        for args, words in cases:
            res = run(*args)
            assert res.returncode in (1, 125) and words in res.stderr, (args, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
            assert _state(engine) == before, args
    finally:
        run("rm", "-f", none)
        run("network", "rm", name)
        neighbour.repair()                 # its idle bridge and rules go
        neighbour.close()
    with Netlink() as nl:
        assert nl.link(other) is None


class _RefusingFirewall:
    """iptables-restore failing (the one process boundary, faked): a network create that
    fails after its bridge device was made must take the device back."""

    def save(self, table: str) -> str:
        return ""

    def restore(self, text: str) -> None:
        from sdk.errors import RuntimeFailure

        raise RuntimeFailure("iptables-restore: refused by the test")


def test_create_failing_at_rules_leaves_no_bridge(engines: list[Engine], tmp_path: Path,
                                                  busybox_tar: Path) -> None:
    from sdk.errors import RuntimeFailure

    eng = _open(engines, tmp_path, busybox_tar, {})
    svc = eng.networks.service
    svc.list()                                      # the built-in networks exist first
    before = _state(eng)
    svc._fw = _RefusingFirewall()
    bridge = "bi" + secrets.token_hex(4)
    try:
        with pytest.raises(RuntimeFailure, match="refused by the test"):
            svc.create("refused", options={"com.docker.network.bridge.name": bridge})
    finally:
        del svc._fw
    with Netlink() as nl:
        assert nl.link(bridge) is None
    assert _state(eng) == before
