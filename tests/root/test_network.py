"""Bridge networking on the real kernel: bridges, veths, leases, NAT rules, ports, names.

Traffic goes only to loopback, to containers these tests start and to a "test host":
a network namespace of a `sleep` process, joined to the host by a veth with a
198.18.x.0/30 link (RFC 2544 benchmark range).  MASQUERADE is checked by reading rules.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from sdk.errors import Conflict, InvalidArgument
from sdk.network.netlink import Netlink
from sdk.network.service import veth_name

pytestmark = pytest.mark.root
# a private cgroup parent: another engine's repair on this host cleans all of "berth/*"
PARENT = "berth-nettest"


def _run(engine: Engine, *args: Any, **kw: Any) -> Any:
    kw.setdefault("cgroup_parent", PARENT)
    return engine.containers.run(*args, **kw)


def _create(engine: Engine, *args: Any, **kw: Any) -> Any:
    kw.setdefault("cgroup_parent", PARENT)
    return engine.containers.create(*args, **kw)


@pytest.fixture(scope="module", autouse=True)
def _private_cgroup_parent() -> Iterator[None]:
    yield
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / PARENT).rmdir()
        except OSError:
            pass


def _saved_rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def _link_exists(name: str) -> bool:
    with Netlink() as nl:
        return nl.link(name) is not None


def _wait_gone(names: list[str], limit: float = 5.0) -> list[str]:
    """veths die with their namespace, asynchronously in the kernel: poll a little."""
    deadline = time.monotonic() + limit
    while True:
        left = [n for n in names if _link_exists(n)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _leases(engine: Engine) -> int:
    return int(engine.db.one("SELECT COUNT(*) AS n FROM net_leases")["n"]) + int(
        engine.db.one("SELECT COUNT(*) AS n FROM net_ports")["n"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_get(host: str, port: int, timeout: float = 3.0) -> bytes:
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


@pytest.fixture
def test_host() -> Iterator[tuple[int, str]]:
    """A namespace joined to the host by a veth: (pid inside, host-side address)."""
    proc = subprocess.Popen(["unshare", "-n", "sleep", "120"])
    name = "tb" + secrets.token_hex(4)
    k = secrets.randbelow(250) + 1
    host_ip, peer_ip = IPv4Interface(f"198.18.{k}.1/30"), IPv4Interface(f"198.18.{k}.2/30")
    try:
        for _ in range(100):
            if os.readlink(f"/proc/{proc.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        with Netlink() as nl:
            nl.add_veth(name, "eth0", proc.pid, 0, 1500, "02:00:c6:12:00:02")
            link = nl.link(name)
            assert link is not None
            nl.set_up(link.index)
            nl.add_address(link.index, host_ip)
        with Netlink.inside(proc.pid) as inner:
            eth = inner.link("eth0")
            lo = inner.link("lo")
            assert eth is not None and lo is not None
            inner.set_up(lo.index)
            inner.set_up(eth.index)
            inner.add_address(eth.index, peer_ip)
            inner.add_default_route(host_ip.ip, eth.index)
        yield proc.pid, str(host_ip.ip)
    finally:
        proc.kill()
        proc.wait()
        with Netlink() as nl:
            nl.delete_link(name)


def _get_from(pid: int, host: str, port: int) -> str:
    code = ("import socket,sys\n"
            f"s=socket.create_connection(({host!r},{port}),timeout=3)\n"
            "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n');sys.stdout.write(s.recv(60).decode())")
    res = subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=10)
    return res.stdout + res.stderr


def test_default_bridge_address_route_and_cleanup(engine: Engine, busybox: str) -> None:
    out = _run(engine, "busybox", ["sh", "-c", "ip -4 addr show eth0; ip route; "
                                            "ping -c1 -W2 $(ip route | awk '/default/{print "
                                            "$3}') >/dev/null && echo GW-OK"],
                                remove=True).decode()
    net = engine.networks.service.get("bridge")
    gateway = net["doc"]["IPAM"]["Config"][0]["Gateway"]
    assert f"default via {gateway} dev eth0" in out
    assert "GW-OK" in out
    assert "inet 1" in out and _leases(engine) == 0
    # outbound NAT and forwarding are berth's own rules, read back from the kernel
    saved = _saved_rules()
    assert f"-A BERTH-POSTROUTING -s {net['subnet']} ! -o {net['bridge']} " in saved
    assert "-A FORWARD -j BERTH-USER" in saved and "-A FORWARD -j BERTH-FORWARD" in saved
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


def test_published_port_from_test_host_and_loopback(engine: Engine, busybox: str,
                                                    test_host: tuple[int, str]) -> None:
    pid, host_ip = test_host
    port = _free_port()
    c = _run(engine, "busybox", ["httpd", "-f", "-p", "80"], detach=True,
                              ports={"80/tcp": port}, name="web")
    try:
        c.reload()
        assert c.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        assert _http_get("127.0.0.1", port).startswith(b"HTTP/1")
        assert _get_from(pid, host_ip, port).startswith("HTTP/1")
        # the host port is held: nobody else can take it while the container runs
        with pytest.raises(OSError), socket.socket() as s:
            s.bind(("0.0.0.0", port))
        with pytest.raises(Conflict, match="already allocated"):
            _run(engine, "busybox", ["true"], ports={"81/tcp": port}, remove=True)
        assert _leases(engine) == 2          # the web container's lease and its port
    finally:
        c.stop(timeout=1)
    assert f"berth:{c.id}" not in _saved_rules()
    assert _leases(engine) == 0
    with socket.socket() as s:
        s.bind(("0.0.0.0", port))           # released
    c.remove()


def test_publish_all_and_port_in_use_is_clean(engine: Engine, busybox: str) -> None:
    engine.images.get(busybox)
    c = _run(engine, "busybox", ["sleep", "30"], detach=True,
                              publish_all_ports=True, expose=["7000", "53/udp"])
    try:
        c.reload()
        ports = c.ports
        assert set(ports) == {"7000/tcp", "53/udp"}
        assert all(int(b[0]["HostPort"]) > 1024 for b in ports.values())
    finally:
        c.remove(force=True)
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(Conflict, match=f"{taken}/tcp failed: port is already allocated"):
            _run(engine, "busybox", ["true"], ports={"80/tcp": taken}, remove=True)
    assert _leases(engine) == 0 and engine.containers.list(all=True) == []


def test_user_network_names_aliases_connect_and_links(engine: Engine, busybox: str) -> None:
    svc = engine.networks.service
    name = "bt" + secrets.token_hex(3)
    net = engine.networks.create(name, ipam={"Config": [{"Subnet": "10.213.7.0/24"}]})
    try:
        with pytest.raises(Conflict, match="overlaps"):
            engine.networks.create(name + "x", ipam={"Config": [{"Subnet": "10.213.0.0/16"}]})
        db = _run(engine, "busybox", ["sleep", "60"], detach=True, name="db",
                                   network=name, network_aliases=["database"],
                                   ip="10.213.7.50")
        out = _run(engine, "busybox", ["sh", "-c", "cat /etc/hosts; ping -c1 -W2 "
                                                "database >/dev/null && echo ALIAS-OK"],
                                    network=name, remove=True).decode()
        assert "10.213.7.50\tdb " in out and "database" in out and "ALIAS-OK" in out
        with pytest.raises(Conflict, match="active endpoints"):
            net.remove()
        # a container on the default bridge joins the network while running
        app = _run(engine, "busybox", ["sleep", "60"], detach=True, name="app")
        svc.connect(name, "app", aliases=["frontend"])
        assert "eth1" in app.exec_run(["ip", "-4", "addr"]).output.decode()
        assert app.exec_run(["ping", "-c1", "-W2", "database"]).exit_code == 0
        assert "frontend" in Path(db.attrs["HostsPath"]).read_text()
        svc.disconnect(name, "app")
        assert "frontend" not in Path(db.attrs["HostsPath"]).read_text()
        assert "eth1" not in app.exec_run(["ip", "-4", "addr"]).output.decode()
        # --network container:db shares the namespace and the hosts file
        out = _run(engine, "busybox", ["sh", "-c", "ip -4 addr show eth0; "
                                                "cat /etc/hosts"],
                                    network_mode="container:db", remove=True).decode()
        assert "10.213.7.50/24" in out
        # legacy links on the default bridge: hosts entry and docker's variables
        web = _run(engine, "busybox", ["httpd", "-f", "-p", "80"], detach=True,
                                    name="lweb", expose=["80"])
        out = _run(engine, "busybox", ["sh", "-c", "env; cat /etc/hosts"],
                                    links={"lweb": "site"}, remove=True).decode()
        ip = web.attrs["NetworkSettings"]["IPAddress"] or \
            engine.containers.get("lweb").attrs["NetworkSettings"]["IPAddress"]
        assert f"SITE_PORT_80_TCP_ADDR={ip}" in out and f"{ip}\tsite" in out
        for c in (db, app, web):
            c.remove(force=True)
        with pytest.raises(InvalidArgument):
            svc.connect(name, _create(engine, "busybox", ["true"],
                                                       network_mode="none").id)
        net.remove()
        assert not _link_exists(net.attrs["Options"]["com.docker.network.bridge.name"])
    finally:
        for c in engine.containers.list(all=True):
            c.remove(force=True)
        try:
            svc.remove(name)
        except Exception:   # noqa: BLE001 - already gone
            pass


def test_cli_network_commands_and_bad_input(berth: object, engine: Engine) -> None:
    run = berth   # the Cli runner
    name = "bc" + secrets.token_hex(3)
    res = run("network", "create", "--subnet", "10.214.3.0/24", "--label", "k=v", name)
    assert res.returncode == 0, res.stderr
    try:
        ls = run("network", "ls", "--filter", f"name={name}").stdout
        assert name in ls and "bridge" in ls
        fmt = run("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", name)
        assert fmt.stdout.strip() == "10.214.3.0/24"
        for args, words in [
            (("network", "create", "--subnet", "10.0.0.0/33", name + "b"), "invalid subnet"),
            (("network", "create", "--subnet", "10.214.3.128/25", name + "c"), "overlaps"),
            (("run", "--rm", "-p", "70000:80", "busybox", "true"), "between 1 and 65535"),
            (("run", "--rm", "-p", "80/sctp", "busybox", "true"), "protocol"),
            (("run", "--rm", "--network", "nosuchnet", "busybox", "true"), "not found"),
        ]:
            res = run(*args)
            assert res.returncode in (1, 125) and words in res.stderr, (args, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1
        cid = run("create", "--network", "none", "busybox", "true").stdout.strip()
        res = run("network", "connect", name, cid)
        assert res.returncode in (1, 125) and "network mode none" in res.stderr
        res = run("run", "-d", "--name", "pp", "--cgroup-parent", PARENT, "-p", "127.0.0.1::80",
                  "busybox", "sleep", "30")
        assert res.returncode == 0, res.stderr
        port = run("port", "pp", "80").stdout.strip()
        assert port.startswith("127.0.0.1:")
        assert f"{port}->80/tcp" in run("ps").stdout
        run("rm", "-f", "pp", cid)
    finally:
        run("network", "rm", name)
    assert name not in run("network", "ls").stdout


def test_iptables_false_manages_no_rules(tmp_path: Path, busybox_tar: Path) -> None:
    (tmp_path / "daemon.json").write_text('{"iptables": false}')
    eng = Engine(root=tmp_path / "root", config=tmp_path / "daemon.json")
    try:
        eng.images.import_image(str(busybox_tar), repository="busybox", tag="latest")
        _run(eng, "busybox", ["true"], remove=True)
        bridge = eng.networks.service.get("bridge")["bridge"]
        assert f"berth:net:{bridge}" not in _saved_rules()
    finally:
        eng.repair()
        eng.close()


def _host_routes() -> set[tuple[str, str]]:
    """(destination, device) of the host's main-table routes; flags such as
    ``linkdown`` follow a bridge's carrier and are not a route of their own."""
    out = subprocess.run(["ip", "-4", "-o", "route", "show"], capture_output=True, text=True,
                         check=True).stdout
    routes = set()
    for line in out.splitlines():
        words = line.split()
        dev = words[words.index("dev") + 1] if "dev" in words else ""
        routes.add((words[0], dev))
    return routes


def _netns() -> set[str]:
    """Every network namespace some process is in (containers' die with them)."""
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.add(os.readlink(f"/proc/{pid}/ns/net"))
            except OSError:
                continue
    return found


def test_many_runs_and_crashes_leave_nothing(engine: Engine, busybox: str) -> None:
    """100 runs ended by stop, kill, rm -f, --rm, supervisor kill -9 + repair: no lease,
    veth, rule, host route or namespace of theirs stays."""
    _run(engine, "busybox", ["true"], remove=True)       # bridge, rules: warm
    bridge = engine.networks.service.get("bridge")["bridge"]
    with Netlink() as nl:
        link = nl.link(bridge)
        assert link is not None
        addresses = nl.addresses(link.index)
    rules_before = _saved_rules().count(f"berth:net:{bridge}")
    routes_before, netns_before = _host_routes(), _netns()
    ids = []
    for i in range(100):
        kind = i % 5
        ports = {"80/tcp": None} if i % 2 else None
        if kind == 0:
            _run(engine, "busybox", ["true"], remove=True, ports=ports)
            continue
        c = _run(engine, "busybox", ["sleep", "60"], detach=True, ports=ports)
        ids.append(c.id)
        if kind == 1:
            c.stop(timeout=0)
        elif kind == 2:
            c.kill()
            c.wait(timeout=10)
        elif kind == 3:
            sup = engine.container_store.get(c.id)["_berth"]["monitor"]["pid"]
            os.kill(sup, signal.SIGKILL)            # the supervisor crashes
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and os.path.exists(f"/proc/{sup}"):
                time.sleep(0.01)
            engine.repair()
        c.remove(force=True)
    assert _leases(engine) == 0
    assert _wait_gone([veth_name(cid, 0) for cid in ids]) == []
    saved = _saved_rules()
    assert not [cid for cid in ids if f"berth:{cid}" in saved]
    assert saved.count(f"berth:net:{bridge}") == rules_before
    assert _host_routes() - routes_before == set()
    assert _netns() - netns_before == set()
    # repair removes the idle bridge; the next start brings it back: one gateway address
    engine.containers.run("busybox", ["true"], remove=True, cgroup_parent=PARENT)
    net = engine.networks.service.get("bridge")
    with Netlink() as nl:
        link = nl.link(net["bridge"])
        assert link is not None
        gateway = net["doc"]["IPAM"]["Config"][0]["Gateway"]
        assert [str(a.ip) for a in nl.addresses(link.index)] == [gateway]
    assert len(addresses) == 1 and IPv4Address(gateway)


def test_bandwidth_limits_are_token_buckets(engine: Engine, busybox: str) -> None:
    c = _run(engine, "busybox", ["sleep", "30"], detach=True, egress_rate="8mbit",
                              ingress_rate="2mbps")
    try:
        c.reload()
        pid = c.attrs["State"]["Pid"]
        inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "tc", "qdisc", "show", "dev",
                                 "eth0"], capture_output=True, text=True).stdout
        outside = subprocess.run(["tc", "qdisc", "show", "dev", veth_name(c.id, 0)],
                                 capture_output=True, text=True).stdout
        assert "tbf" in inside and "rate 8Mbit" in inside
        assert "tbf" in outside and "rate 16Mbit" in outside
        assert c.attrs["HostConfig"]["EgressRate"] == 8_000_000
    finally:
        c.remove(force=True)
    with pytest.raises(InvalidArgument, match="egress-rate"):
        _run(engine, "busybox", ["true"], egress_rate="fast", remove=True)
