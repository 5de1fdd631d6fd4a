"""Networks: records, bridges, IPAM leases, published ports, and a container's endpoints.

A bridge network is a row in ``networks`` (Docker's inspect document in ``doc``), a
bridge device (created on first use, re-created when missing) and berth's iptables
rules for it.  A running container holds, per network, a lease row (its address and
the veth name) and, per published port, a ``net_ports`` row plus a bound (never
listening) socket in its supervisor: the socket makes "port already in use" a clear
error at start and keeps anyone else off the port while the container runs.  Leases
and ports name the supervisor that holds them (pid + start time), so repair can tell a
starting container from a dead one.

The container's network namespace is the one its init is cloned into: the supervisor
adds the veth pair in ``on_created`` (the peer is created straight inside the new
namespace as ethN) and configures it through a netlink socket opened in there.  When
the container dies, its namespace and with it the veth pair go away in the kernel,
even after a ``kill -9`` of everything berth runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any

from sdk.errors import Conflict, InvalidArgument, NetworkNotFound, SdkError
from sdk.network import ipam
from sdk.network.ports import Published
from sdk.store.db import dumps, loads

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.network.netlink import Netlink
    from sdk.network.rules import Firewall

LOCK_PATH = "/run/berth/networks.lock"
BUILTIN = {"bridge": "bridge", "host": "host", "none": "null"}
PREFIX = "bv"      # host-side veth names: bv + 12 hex of the container + network index


def veth_name(cid: str, index: int) -> str:
    return f"{PREFIX}{cid[:12]}{index:x}"


_held = {"depth": 0, "pid": 0, "shared": 0}


@contextmanager
def host_lock(shared: bool = False) -> Iterator[None]:
    """Host-wide lock of every engine: exclusive for bridge creation and removal and
    subnet choice, shared for a start's "bridge is there + lease" step (starts run in
    parallel; a bridge cleanup waits for them).

    Re-entrant within a process (flock on a second fd of the same file would wait for
    the first one forever); an exclusive request inside a shared hold is a bug."""
    if _held["depth"] and _held["pid"] == os.getpid():
        if _held["shared"] and not shared:
            raise RuntimeError("host_lock: exclusive requested inside a shared hold")
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        _held.update(depth=1, pid=os.getpid(), shared=int(shared))
        try:
            yield
        finally:
            _held.update(depth=0, pid=0, shared=0)
    finally:
        os.close(fd)


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass


@dataclass
class Endpoint:
    network: dict[str, Any]          # the network row (id, name, bridge, subnet, doc)
    iface: str                       # ethN inside
    veth: str                        # host side
    address: IPv4Interface
    gateway: IPv4Address
    mac: str
    aliases: list[str]

    @property
    def user_defined(self) -> bool:
        return self.network["name"] not in BUILTIN


@dataclass
class Attachment:
    """What one start of a container holds on the network side, until ``release``."""

    service: NetworkService
    cid: str
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: list[Published] = field(default_factory=list)
    holds: list[socket.socket] = field(default_factory=list)
    released: bool = False
    rates: tuple[int, int] = (0, 0)     # (egress, ingress) bits/s

    def attach(self, pid: int) -> None:
        """In ``on_created``: veths into ``pid``'s netns, addresses, route, port rules."""
        from sdk.network.netlink import Netlink

        svc = self.service
        if not self.endpoints:
            return
        with Netlink() as nl:
            for ep in self.endpoints:
                br = nl.link(ep.network["bridge"])
                if br is None:
                    raise SdkError(f"network {ep.network['name']}: bridge "
                                   f"{ep.network['bridge']} disappeared")
                nl.add_veth(ep.veth, ep.iface, pid, br.index, svc.mtu, ep.mac)
        with Netlink.inside(pid) as inner:
            for n, ep in enumerate(self.endpoints):
                link = inner.link(ep.iface)
                assert link is not None
                inner.set_up(link.index)
                inner.add_address(link.index, ep.address)
                if n == 0 and not ep.network["doc"].get("Internal"):
                    inner.add_default_route(ep.gateway, link.index)
        if self.rates[0] or self.rates[1]:
            from sdk.network import shaping

            ep = self.endpoints[0]
            with Netlink() as nl:
                link = nl.link(ep.veth)
                assert link is not None
            shaping.apply(pid, link.index, ep.iface, *self.rates)
        if self.ports and svc.firewall is not None:
            from sdk.network.rules import add_ports

            ep = self.endpoints[0]
            svc.firewall.restore(add_ports(self.cid, ep.network["bridge"], str(ep.address.ip),
                                           self.ports).text())
        svc.refresh_hosts(self.cid, [ep.network["id"] for ep in self.endpoints
                                     if ep.user_defined])

    def record(self, doc: dict[str, Any]) -> None:
        """Fill NetworkSettings of the running container (inside its modify())."""
        ns = doc.setdefault("NetworkSettings", {})
        ports: dict[str, Any] = {}
        for key in (doc["Config"].get("ExposedPorts") or {}):
            ports[key] = None
        for p in self.ports:
            ports.setdefault(p.key, None)
            ports[p.key] = (ports[p.key] or []) + [{"HostIp": p.host_ip or "0.0.0.0",
                                                    "HostPort": str(p.host_port)}]
        ns["Ports"] = ports
        ns["SandboxKey"] = f"/proc/{doc['State'].get('Pid', 0)}/ns/net"
        nets = ns.setdefault("Networks", {})
        for n, ep in enumerate(self.endpoints):
            entry = nets.setdefault(ep.network["name"], {})
            entry.update(_endpoint_doc(ep, self.cid))
            if n == 0 and ep.network["name"] == "bridge":
                ns.update(Gateway=str(ep.gateway), IPAddress=str(ep.address.ip),
                          IPPrefixLen=ep.address.network.prefixlen, MacAddress=ep.mac,
                          Bridge=ep.network["bridge"])

    def release(self, *, explicit: bool = False) -> None:
        if self.released:
            return
        self.released = True
        for s in self.holds:
            s.close()
        self.holds = []
        self.service.release_container(self.cid, explicit=explicit, had_ports=bool(self.ports))


def _endpoint_doc(ep: Endpoint, cid: str) -> dict[str, Any]:
    return {"NetworkID": ep.network["id"], "EndpointID": f"{cid[:32]}{ep.network['id'][:32]}",
            "Gateway": str(ep.gateway), "IPAddress": str(ep.address.ip),
            "IPPrefixLen": ep.address.network.prefixlen, "MacAddress": ep.mac,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": ep.aliases if ep.user_defined else None}


def cleared_settings(doc: dict[str, Any]) -> None:
    """After a stop: the configured networks stay, the runtime fields are emptied."""
    ns = doc.setdefault("NetworkSettings", {})
    ns.update(Ports={}, SandboxKey="", Gateway="", IPAddress="", IPPrefixLen=0,
              MacAddress="", Bridge="")
    for entry in (ns.get("Networks") or {}).values():
        entry.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="",
                     DNSNames=None)


class NetworkService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config
        self.mtu = int(engine.config.mtu or 1500)
        self._ensure_schema()

    @property
    def db(self) -> Any:
        return self.engine.db

    def _ensure_schema(self) -> None:
        if self.db.one("SELECT 1 FROM sqlite_master WHERE name='net_ports'") is None:
            from sdk.store.db import SCHEMA

            self.db.conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")

    @property
    def firewall(self) -> Firewall | None:
        if not self.config.iptables:
            return None
        if not hasattr(self, "_fw"):
            from sdk.network.rules import IptablesFirewall

            self._fw: Firewall = IptablesFirewall()
        return self._fw

    # ---- records --------------------------------------------------------------------
    def _row(self, row: Any) -> dict[str, Any]:
        return {"id": row["id"], "name": row["name"], "driver": row["driver"],
                "bridge": row["bridge"], "subnet": row["subnet"], "doc": loads(row["doc"])}

    def _ensure_builtins(self) -> None:
        if self.db.one("SELECT 1 FROM networks WHERE name='bridge'") is not None:
            return
        from sdk._internal.names import new_id
        from sdk.engine import DEFAULT_ROOT
        from sdk.images.service import now_rfc3339

        cfg = self.config
        nid = new_id()
        bridge = "berth0" if str(self.engine.root) == DEFAULT_ROOT else f"br-{nid[:12]}"
        with host_lock():
            if cfg.bip:
                iface = IPv4Interface(cfg.bip)
                subnet, gateway = iface.network, iface.ip
                ipam.check_free(subnet, self._taken(exclude=bridge))
            else:
                subnet = self._choose(self._taken(exclude=bridge), exclude=bridge)
                gateway = subnet.network_address + 1
            ip_range = cfg.fixed_cidr or ""
            doc = _network_doc("bridge", nid, "bridge", now_rfc3339(), str(subnet),
                               str(gateway), ip_range, False, {},
                               {"com.docker.network.bridge.default_bridge": "true",
                                "com.docker.network.bridge.name": bridge,
                                "com.docker.network.driver.mtu": str(self.mtu)})
            with self.db.write() as conn:
                if conn.execute("SELECT 1 FROM networks WHERE name='bridge'").fetchone():
                    return
                conn.execute("INSERT INTO networks VALUES (?,?,?,?,?,?,?)",
                             (nid, "bridge", "bridge", bridge, str(subnet), 0, dumps(doc)))
                for name, driver in (("host", "host"), ("none", "null")):
                    oid = new_id()
                    conn.execute("INSERT OR IGNORE INTO networks VALUES (?,?,?,?,?,?,?)",
                                 (oid, name, driver, "", "", 0, dumps(_network_doc(
                                     name, oid, driver, now_rfc3339(), "", "", "", False,
                                     {}, {}))))
            # the bridge (and its route) right away: another engine choosing a subnet
            # after this lock must see it taken
            self._ensure_bridge_locked(self.get("bridge"))

    def _taken(self, exclude: str = "") -> list[tuple[IPv4Network, str]]:
        from sdk.network.netlink import host_routes

        taken = [(IPv4Network(r["subnet"]), f"network {r['name']}") for r in self.db.query(
            "SELECT name, subnet FROM networks WHERE subnet != ''")]
        ours = {r["bridge"] for r in self.db.query("SELECT bridge FROM networks")}
        taken += [(net, f"the host route {net} dev {dev}") for net, dev in host_routes()
                  if dev not in ours and dev != exclude]
        return taken

    def list(self) -> list[dict[str, Any]]:
        self._ensure_builtins()
        return [self._row(r) for r in self.db.query("SELECT * FROM networks ORDER BY name")]

    def get(self, ref: str) -> dict[str, Any]:
        if not ref:
            raise InvalidArgument("network name or ID must not be empty")
        self._ensure_builtins()
        row = self.db.one("SELECT * FROM networks WHERE id=? OR name=?", (ref, ref))
        if row is None:
            rows = self.db.query("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise Conflict(f"network {ref} is ambiguous ({len(rows)} matches found)")
            row = rows[0] if rows else None
        if row is None:
            raise NetworkNotFound(f"network {ref} not found")
        return self._row(row)

    def inspect(self, ref: str) -> dict[str, Any]:
        net = self.get(ref)
        doc = dict(net["doc"])
        members = {}
        for r in self.db.query("SELECT l.address, l.container_id, c.name FROM net_leases l "
                               "JOIN containers c ON c.id=l.container_id "
                               "WHERE l.network_id=?", (net["id"],)):
            ip = IPv4Address(r["address"])
            prefix = IPv4Network(net["subnet"]).prefixlen
            members[r["container_id"]] = {
                "Name": r["name"], "EndpointID": f"{r['container_id'][:32]}{net['id'][:32]}",
                "MacAddress": ipam.mac_for(ip), "IPv4Address": f"{ip}/{prefix}",
                "IPv6Address": ""}
        doc["Containers"] = members
        return doc

    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, ip_range: str | None = None,
               internal: bool = False, labels: Mapping[str, str] | None = None,
               options: Mapping[str, str] | None = None,
               check_duplicate: bool = True) -> dict[str, Any]:
        import re

        from sdk._internal.names import new_id
        from sdk.images.service import now_rfc3339

        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name or ""):
            raise InvalidArgument(f"invalid network name {name!r}: only "
                                  "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if driver not in ("bridge",):
            raise InvalidArgument(f"network driver {driver!r} is not supported (bridge)")
        if name in BUILTIN:
            raise Conflict(f"network with name {name} already exists")
        self._ensure_builtins()
        net = ipam.parse_subnet(subnet) if subnet else None
        rng = ipam.parse_subnet(ip_range, "ip-range") if ip_range else None
        if gateway and not net:
            raise InvalidArgument("--gateway needs --subnet")
        if rng and not net:
            raise InvalidArgument("--ip-range needs --subnet")
        if net and rng and not rng.subnet_of(net):
            raise InvalidArgument(f"ip-range {rng} is not inside subnet {net}")
        if net:
            ipam.gateway_for(net, gateway)
        nid = new_id()
        opts = dict(options or {})
        bridge = opts.get("com.docker.network.bridge.name") or f"br-{nid[:12]}"
        if len(bridge) > 15:
            raise InvalidArgument(f"bridge name {bridge!r} is longer than 15 characters")
        with host_lock():
            taken = self._taken()
            if net:
                ipam.check_free(net, taken)
            else:
                net = self._choose(taken)
            gw = ipam.gateway_for(net, gateway)
            opts.setdefault("com.docker.network.bridge.name", bridge)
            doc = _network_doc(name, nid, driver, now_rfc3339(), str(net), str(gw),
                               str(rng) if rng else "", bool(internal), dict(labels or {}), opts)
            try:
                with self.db.write() as conn:
                    conn.execute("INSERT INTO networks VALUES (?,?,?,?,?,?,?)",
                                 (nid, name, driver, bridge, str(net), 0, dumps(doc)))
            except Exception as exc:   # sqlite3.IntegrityError, without importing it
                if "UNIQUE" in str(exc):
                    raise Conflict(f"network with name {name} already exists") from None
                raise
            try:
                self._ensure_bridge_locked(self.get(nid))
            except BaseException:
                with self.db.write() as conn:
                    conn.execute("DELETE FROM networks WHERE id=?", (nid,))
                raise
        return self.get(nid)

    def users(self, net: Mapping[str, Any]) -> list[str]:
        """Containers configured on (or holding a lease of) ``net``."""
        out = {r["container_id"] for r in self.db.query(
            "SELECT container_id FROM net_leases WHERE network_id=?", (net["id"],))}
        for doc in self.engine.container_store.all():
            if net["name"] in ((doc.get("NetworkSettings") or {}).get("Networks") or {}) or \
                    doc["HostConfig"].get("NetworkMode") == net["name"] or \
                    (doc["HostConfig"].get("_berth_endpoint") or {}).get("Network") == \
                    net["name"]:
                out.add(doc["Id"])
        return sorted(out)

    def remove(self, ref: str) -> None:
        net = self.get(ref)
        if net["name"] in BUILTIN:
            raise Conflict(f"{net['name']} is a pre-defined network and cannot be removed")
        users = self.users(net)
        if users:
            raise Conflict(f"error while removing network: network {net['name']} id "
                           f"{net['id']} has active endpoints ({len(users)} container(s))")
        with host_lock():
            self._delete_bridge(net)
            with self.db.write() as conn:
                conn.execute("DELETE FROM networks WHERE id=?", (net["id"],))

    def prune(self) -> list[str]:
        gone = []
        for net in self.list():
            if net["name"] in BUILTIN or self.users(net):
                continue
            try:
                self.remove(net["id"])
                gone.append(net["name"])
            except SdkError:
                pass
        return gone

    # ---- connect / disconnect ---------------------------------------------------------
    def connect(self, ref: str, container: str, *, ip: str | None = None,
                aliases: Sequence[str] = ()) -> None:
        net = self.get(ref)
        doc = self.engine.tasks.get(container)
        name = doc["Name"].lstrip("/")
        mode = doc["HostConfig"].get("NetworkMode") or "bridge"
        if net["driver"] != "bridge":
            raise InvalidArgument(f"container cannot be connected to the {net['name']} "
                                  "network: only bridge networks can be connected")
        if mode in ("none", "host") or mode.startswith("container:"):
            raise InvalidArgument(f"container {name} uses network mode {mode}: it cannot be "
                           f"connected to network {net['name']}")
        if (ip or aliases) and net["name"] in BUILTIN:
            raise InvalidArgument("user specified IP address and aliases are supported on "
                                  "user defined networks only")
        if ip:
            addr = ipam.parse_address(ip, "--ip")
            if addr not in IPv4Network(net["subnet"]):
                raise InvalidArgument(f"--ip {addr} is not in the subnet {net['subnet']} of "
                                      f"network {net['name']}")
        nets = dict(self.configured(doc))
        if net["name"] in nets:
            raise Conflict(f"endpoint with name {name} already exists in network "
                           f"{net['name']}")
        entry: dict[str, Any] = {"IPAMConfig": {"IPv4Address": ip} if ip else None,
                                 "Links": None, "Aliases": list(aliases) or None,
                                 "MacAddress": "", "NetworkID": net["id"]}
        running = doc["State"]["Status"] in ("running", "paused")
        live: Endpoint | None = None
        if running:
            live = self._connect_live(doc, net, entry)

        def change(d: dict[str, Any]) -> None:
            networks = d.setdefault("NetworkSettings", {}).setdefault("Networks", {})
            for n, cfg in nets.items():
                networks.setdefault(n, dict(cfg))
            networks[net["name"]] = dict(entry)
            if live is not None:
                networks[net["name"]].update(_endpoint_doc(live, d["Id"]))

        self.engine.container_store.modify(doc["Id"], change)

    def _connect_live(self, doc: dict[str, Any], net: dict[str, Any],
                      entry: Mapping[str, Any]) -> Endpoint:
        from sdk.network.netlink import Netlink

        cid, pid = doc["Id"], int(doc["State"]["Pid"])
        mon = doc["_berth"].get("monitor") or {}
        rows = self.db.query("SELECT veth FROM net_leases WHERE container_id=?", (cid,))
        index = max([int(r["veth"][-1], 16) for r in rows] + [-1]) + 1
        if index > 15:
            raise Conflict(f"container {cid[:12]} is connected to too many networks")
        self.ensure_bridge(net)
        with host_lock(shared=True), self.db.write() as conn:
            ep = self._lease(conn, cid, index, net, entry, doc["Name"].lstrip("/"),
                             int(mon.get("pid", 0)), int(mon.get("start", 0)))
        try:
            with Netlink() as nl:
                br = nl.link(net["bridge"])
                assert br is not None
                nl.add_veth(ep.veth, ep.iface, pid, br.index, self.mtu, ep.mac)
            with Netlink.inside(pid) as inner:
                link = inner.link(ep.iface)
                assert link is not None
                inner.set_up(link.index)
                inner.add_address(link.index, ep.address)
        except BaseException:
            with Netlink() as nl:
                nl.delete_link(ep.veth)
            with self.db.write() as conn:
                conn.execute("DELETE FROM net_leases WHERE container_id=? AND network_id=?",
                             (cid, net["id"]))
            raise
        self.refresh_hosts(cid, [net["id"]])
        self.write_hosts_of(doc)
        return ep

    def disconnect(self, ref: str, container: str, *, force: bool = False) -> None:
        from sdk.network.netlink import Netlink

        net = self.get(ref)
        doc = self.engine.tasks.get(container)
        nets = dict(self.configured(doc))
        row = self.db.one("SELECT veth FROM net_leases WHERE container_id=? AND "
                          "network_id=?", (doc["Id"], net["id"]))
        if net["name"] not in nets and row is None:
            if force:
                return
            raise Conflict(f"container {doc['Id'][:12]} is not connected to network "
                           f"{net['name']}")
        if row is not None:
            with Netlink() as nl:
                nl.delete_link(row["veth"])
            with self.db.write() as conn:
                conn.execute("DELETE FROM net_leases WHERE container_id=? AND network_id=?",
                             (doc["Id"], net["id"]))
            self.refresh_hosts(doc["Id"], [net["id"]], leaving=True)
            self.write_hosts_of(doc)

        def change(d: dict[str, Any]) -> None:
            networks = d.setdefault("NetworkSettings", {}).setdefault("Networks", {})
            for n, cfg in nets.items():
                networks.setdefault(n, dict(cfg))
            networks.pop(net["name"], None)

        self.engine.container_store.modify(doc["Id"], change)

    # ---- bridges ----------------------------------------------------------------------
    def ensure_bridge(self, net: Mapping[str, Any], nl: Netlink | None = None) -> None:
        from sdk.network.netlink import Netlink

        own = nl is None
        nl = nl or Netlink()
        try:
            if nl.link(net["bridge"]) is not None:
                return
        finally:
            if own:
                nl.close()
        with host_lock():
            self._ensure_bridge_locked(net)

    def _ensure_bridge_locked(self, net: Mapping[str, Any]) -> None:
        from sdk.network.netlink import Netlink

        subnet = IPv4Network(net["subnet"])
        foreign = [t for t in self._taken(exclude=net["bridge"])
                   if not t[1].startswith("network ")]
        hit = ipam.overlapping(subnet, foreign)
        if hit is not None and net["name"] == "bridge" and not self.config.bip and \
                self.db.one("SELECT 1 FROM net_leases WHERE network_id=?",
                            (net["id"],)) is None:
            net = self._move_default(net, foreign)   # its old subnet got taken meanwhile
            subnet, hit = IPv4Network(net["subnet"]), None
        if hit is not None:
            raise Conflict(f"network {net['name']}: subnet {subnet} overlaps "
                           f"{hit[1]}; change the network (or bip in daemon.json)")
        gw = IPv4Address(net["doc"]["IPAM"]["Config"][0]["Gateway"])
        with Netlink() as nl:
            link = nl.link(net["bridge"])
            if link is None:
                import secrets

                mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
                self._gc_foreign_bridges(nl, orphans_only=True)
                nl.add_bridge(net["bridge"], mac, self.mtu, f"berth:{self.db.path}")
                link = nl.link(net["bridge"])
                assert link is not None
            if IPv4Interface((gw, subnet.prefixlen)) not in nl.addresses(link.index):
                nl.add_address(link.index, IPv4Interface((gw, subnet.prefixlen)))
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{net['bridge']}/route_localnet", "1")
        if self.config.ip_forward and not net["doc"].get("Internal"):
            _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        if self.firewall is not None:
            from sdk.network.rules import ensure_network

            ensure_network(self.firewall, net["bridge"], str(subnet),
                           internal=bool(net["doc"].get("Internal")),
                           masquerade=bool(self.config.ip_masq))

    def _choose(self, taken: Sequence[tuple[IPv4Network, str]], exclude: str = ""
                ) -> IPv4Network:
        """A free pool subnet; when the pools are used up, other engines' idle bridges
        are removed first (they come back on their next start)."""
        pools = ipam.pools_from(self.config.default_address_pools)
        try:
            return ipam.choose_subnet(pools, taken)
        except Conflict:
            from sdk.network.netlink import Netlink

            with Netlink() as nl:
                if not self._gc_foreign_bridges(nl, orphans_only=False):
                    raise
            return ipam.choose_subnet(pools, self._taken(exclude=exclude))

    def _gc_foreign_bridges(self, nl: Netlink, orphans_only: bool) -> list[str]:
        """Remove other engines' idle bridges (under the exclusive host lock).

        An engine's bridge carries its database path as alias.  Always removed: bridges
        of a deleted data root (tests, experiments) with nothing plugged in.  With
        ``orphans_only`` false (pools used up): also bridges whose database holds no
        lease on them (leases are written under the shared host lock after a bridge
        check, so a starting container is never robbed); their engine re-creates them
        on its next start."""
        import sqlite3

        links = nl.links()
        masters = {link.master for link in links if link.master}
        ours = {r["bridge"] for r in self.db.query("SELECT bridge FROM networks")}
        gone = []
        for link in links:
            if link.kind != "bridge" or not link.alias.startswith("berth:") or \
                    link.name in ours or link.index in masters:
                continue
            path = link.alias[len("berth:"):]
            busy = False
            if os.path.exists(path) and orphans_only:
                continue
            if os.path.exists(path):
                try:
                    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
                    try:
                        busy = conn.execute(
                            "SELECT 1 FROM net_leases l JOIN networks n ON "
                            "n.id=l.network_id WHERE n.bridge=? LIMIT 1",
                            (link.name,)).fetchone() is not None
                    finally:
                        conn.close()
                except sqlite3.Error:
                    busy = True          # cannot tell: leave it
            if not busy:
                self._delete_bridge({"bridge": link.name})
                gone.append(link.name)
        return gone

    def _move_default(self, net: Mapping[str, Any], foreign: Sequence[tuple[IPv4Network, str]]
                      ) -> dict[str, Any]:
        ours = [(IPv4Network(r["subnet"]), r["name"]) for r in self.db.query(
            "SELECT name, subnet FROM networks WHERE subnet != '' AND id != ?", (net["id"],))]
        subnet = self._choose(list(foreign) + ours, exclude=net["bridge"])
        doc = dict(net["doc"])
        doc["IPAM"] = {**doc["IPAM"], "Config": [{"Subnet": str(subnet),
                                                  "Gateway": str(subnet.network_address + 1)}]}
        with self.db.write() as conn:
            conn.execute("UPDATE networks SET subnet=?, last_ip=0, doc=? WHERE id=?",
                         (str(subnet), dumps(doc), net["id"]))
        return self.get(net["id"])

    def _delete_bridge(self, net: Mapping[str, Any]) -> bool:
        from sdk.network.netlink import Netlink

        if not net.get("bridge"):
            return False
        with Netlink() as nl:
            gone = nl.delete_link(net["bridge"])
        if self.firewall is not None:
            from sdk.network.rules import delete_tagged

            delete_tagged(self.firewall, [f"berth:net:{net['bridge']}"])
        return gone

    # ---- a container's endpoints ------------------------------------------------------
    def normalize(self, doc: dict[str, Any]) -> bool:
        """Move create-time endpoint settings into NetworkSettings.Networks (in place);
        True when the record changed."""
        host = doc["HostConfig"]
        stash = host.pop("_berth_endpoint", None)
        if stash is None:
            return False
        name = stash.get("Network") or ""
        if name and stash.get("MacAddress"):     # config, kept apart from runtime fields
            doc["_berth"].setdefault("macs", {})[name] = stash["MacAddress"]
        if name:
            ipcfg = {"IPv4Address": stash["IPv4Address"]} if stash.get("IPv4Address") else None
            doc.setdefault("NetworkSettings", {}).setdefault("Networks", {})[name] = {
                "IPAMConfig": ipcfg, "Links": None, "Aliases": stash.get("Aliases") or None,
                "MacAddress": stash.get("MacAddress") or "", "NetworkID": "",
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DNSNames": None}
        return True

    def configured(self, doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        mode = doc["HostConfig"].get("NetworkMode") or "default"
        if mode in ("none", "host") or mode.startswith("container:"):
            return []
        nets = dict((doc.get("NetworkSettings") or {}).get("Networks") or {})
        stash = doc["HostConfig"].get("_berth_endpoint")
        if stash and stash.get("Network"):
            nets.setdefault(stash["Network"], {"IPAMConfig": {"IPv4Address": stash.get(
                "IPv4Address")} if stash.get("IPv4Address") else None,
                "Aliases": stash.get("Aliases"), "MacAddress": stash.get("MacAddress")})
        if not nets:
            nets = {"bridge" if mode == "default" else mode: {}}
        macs = dict((doc.get("_berth") or {}).get("macs") or {})
        if stash and stash.get("MacAddress"):
            macs.setdefault(stash["Network"], stash["MacAddress"])
        nets = {n: {**(cfg or {}), "MacAddress": macs.get(n, "")} for n, cfg in nets.items()}
        primary = "bridge" if mode == "default" else mode
        order = sorted(nets, key=lambda n: (n != primary, n))
        return [(n, nets[n] or {}) for n in order]

    def prepare(self, doc: dict[str, Any]) -> Attachment:
        """Before the spawn: leases, held host ports, endpoint data.  Undone on error."""
        from sdk.tasks.procs import start_time

        cid = doc["Id"]
        att = Attachment(self, cid)
        wanted = self.configured(doc)
        if not wanted:
            if doc["HostConfig"].get("PortBindings") or \
                    doc["HostConfig"].get("PublishAllPorts"):
                mode = doc["HostConfig"].get("NetworkMode")
                if mode != "host" and (doc["HostConfig"].get("PortBindings") or {}):
                    raise InvalidArgument(f"published ports need a bridge network; the "
                                          f"container's network mode is {mode}")
            return att
        nets = [(self.get(name), cfg) for name, cfg in wanted]
        from sdk.network.netlink import Netlink

        for net, _cfg in nets:
            if net["driver"] != "bridge":
                raise InvalidArgument(f"container cannot be connected to network "
                                      f"{net['name']} together with others")
        att.rates = (int(doc["HostConfig"].get("EgressRate") or 0),
                     int(doc["HostConfig"].get("IngressRate") or 0))
        me, me_start = os.getpid(), start_time(os.getpid())
        try:
            att.ports = self._hold_ports(doc, att)
            name = doc["Name"].lstrip("/")
            for attempt in range(3):
                with Netlink() as nl:
                    for net, _cfg in nets:
                        self.ensure_bridge(net, nl)
                    # bridges checked again and leases written under the shared host
                    # lock: a bridge cleanup (exclusive) sees no bridge yet or our lease
                    with host_lock(shared=True), self.db.write() as conn:
                        if attempt < 2 and any(nl.link(net["bridge"]) is None
                                               for net, _cfg in nets):
                            continue      # removed meanwhile by a cleanup: create again
                        for index, (net, cfg) in enumerate(nets):
                            ep = self._lease(conn, cid, index, net, cfg, name, me,
                                             me_start)
                            att.endpoints.append(ep)
                        for p in att.ports:
                            conn.execute("DELETE FROM net_ports WHERE proto=? AND "
                                         "host_ip=? AND host_port=?",
                                         (p.proto, p.host_ip, p.host_port))
                            conn.execute("INSERT INTO net_ports VALUES (?,?,?,?)",
                                         (p.proto, p.host_ip, p.host_port, cid))
                break
        except BaseException:
            att.release()
            raise
        return att

    def _lease(self, conn: Any, cid: str, index: int, net: dict[str, Any],
               cfg: Mapping[str, Any], name: str, pid: int, pid_start: int) -> Endpoint:
        row = conn.execute("SELECT last_ip FROM networks WHERE id=?", (net["id"],)).fetchone()
        subnet = IPv4Network(net["subnet"])
        conf = net["doc"]["IPAM"]["Config"][0]
        gateway = IPv4Address(conf["Gateway"])
        rng = IPv4Network(conf["IPRange"]) if conf.get("IPRange") else None
        used = {int(IPv4Address(r[0])) for r in conn.execute(
            "SELECT address FROM net_leases WHERE network_id=?", (net["id"],))}
        requested = ((cfg.get("IPAMConfig") or {}).get("IPv4Address") or "")
        if requested:
            ip = ipam.parse_address(requested, "--ip")
            if ip not in subnet:
                raise InvalidArgument(f"--ip {ip} is not in the subnet {subnet} of network "
                                      f"{net['name']}")
            if int(ip) in used or ip == gateway:
                raise Conflict(f"address {ip} is already in use on network {net['name']}")
        else:
            ip = ipam.next_address(subnet, rng, used | {int(gateway)}, int(row[0]))
            conn.execute("UPDATE networks SET last_ip=? WHERE id=?", (int(ip), net["id"]))
        aliases = [name, cid[:12]] + list(cfg.get("Aliases") or [])
        veth = veth_name(cid, index)
        conn.execute("INSERT INTO net_leases VALUES (?,?,?,?,?,?,?)",
                     (net["id"], str(ip), cid, veth, json.dumps(aliases), pid, pid_start))
        return Endpoint(net, f"eth{index}", veth, IPv4Interface((ip, subnet.prefixlen)),
                        gateway, cfg.get("MacAddress") or ipam.mac_for(ip), aliases)

    def _hold_ports(self, doc: Mapping[str, Any], att: Attachment) -> list[Published]:
        from sdk.network.ports import port_range, split_proto

        host = doc["HostConfig"]
        bindings = dict(host.get("PortBindings") or {})
        if host.get("PublishAllPorts"):
            for key in (doc["Config"].get("ExposedPorts") or {}):
                bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
        out = []
        for key, items in bindings.items():
            port, proto = split_proto(key, key)
            for b in items or [{"HostIp": "", "HostPort": ""}]:
                host_ip = b.get("HostIp") or "0.0.0.0"
                candidates = [0]
                if b.get("HostPort"):
                    lo, hi = port_range(str(b["HostPort"]), key)
                    candidates = list(range(lo, hi + 1))
                sock, bound = _bind(proto, host_ip, candidates)
                att.holds.append(sock)
                out.append(Published(proto, host_ip, bound, int(port)))
        return out

    def release_container(self, cid: str, *, explicit: bool = False,
                          had_ports: bool = True) -> None:
        """Give back everything of ``cid``: leases, port rows and rules, its veths."""
        rows = self.db.query("SELECT network_id, veth FROM net_leases WHERE container_id=?",
                             (cid,))
        if explicit and rows:
            from sdk.network.netlink import Netlink

            with Netlink() as nl:
                for r in rows:
                    nl.delete_link(r["veth"])
        with self.db.write() as conn:
            conn.execute("DELETE FROM net_leases WHERE container_id=?", (cid,))
            ports = conn.execute("DELETE FROM net_ports WHERE container_id=?", (cid,)).rowcount
        if (ports or had_ports) and self.firewall is not None:
            from sdk.network.rules import delete_tagged

            delete_tagged(self.firewall, [f"berth:{cid}"])
        user_nets = [r["network_id"] for r in rows]
        if user_nets:
            self.refresh_hosts(cid, user_nets, leaving=True)

    # ---- names: /etc/hosts of the members of user-defined networks -----------------------
    def refresh_hosts(self, cid: str, network_ids: Sequence[str], leaving: bool = False
                      ) -> None:
        ids = [n for n in network_ids if self.db.one(
            "SELECT 1 FROM networks WHERE id=? AND name NOT IN ('bridge','host','none')",
            (n,))]
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        members = {r["container_id"] for r in self.db.query(
            f"SELECT container_id FROM net_leases WHERE network_id IN ({marks})", tuple(ids))}
        members.discard(cid)     # the starting container's file is written by its start
        for member in members:
            doc = self.engine.container_store.load(member)
            if doc is not None:
                try:
                    self.write_hosts_of(doc)
                except OSError:
                    pass

    def write_hosts_of(self, doc: Mapping[str, Any]) -> None:
        from sdk.containers.specgen import write_hosts

        own, peers, gateway = self.names_for(doc)
        write_hosts(doc, own, peers, gateway)

    def names_for(self, doc: Mapping[str, Any]
                  ) -> tuple[list[str], list[tuple[str, list[str]]], str]:
        """(own addresses, peers to resolve, gateway) for ``doc``'s hosts file."""
        cid = doc["Id"]
        rows = self.db.query("SELECT l.address, n.doc FROM net_leases l JOIN networks n ON "
                             "n.id=l.network_id WHERE l.container_id=? ORDER BY l.veth",
                             (cid,))
        own = [r["address"] for r in rows]
        gateway = loads(rows[0]["doc"])["IPAM"]["Config"][0]["Gateway"] if rows else ""
        return own, self.peer_entries(cid) + self.links_of(doc)[0], gateway

    def peer_entries(self, cid: str) -> list[tuple[str, list[str]]]:
        """(address, names) of every other member of ``cid``'s user-defined networks."""
        out = []
        for r in self.db.query(
                "SELECT p.address, p.names FROM net_leases m JOIN net_leases p ON "
                "p.network_id=m.network_id AND p.container_id!=m.container_id "
                "JOIN networks n ON n.id=m.network_id "
                "WHERE m.container_id=? AND n.name NOT IN ('bridge','host','none') "
                "ORDER BY p.address", (cid,)):
            out.append((r["address"], json.loads(r["names"])))
        return out

    def links_of(self, doc: Mapping[str, Any]) -> tuple[list[tuple[str, list[str]]], list[str]]:
        """Legacy --link: hosts entries and Docker's ALIAS_PORT_80_TCP_ADDR-style env."""
        entries: list[tuple[str, list[str]]] = []
        env: list[str] = []
        me = doc["Name"].lstrip("/")
        for link in doc["HostConfig"].get("Links") or []:
            name, _, alias = link.partition(":")
            try:
                target = self.engine.container_store.get(name)
            except SdkError:
                raise InvalidArgument(f"could not get container for {name}") from None
            row = self.db.one("SELECT address FROM net_leases WHERE container_id=? "
                              "ORDER BY veth", (target["Id"],))
            if row is None:
                raise Conflict(f"cannot link to {name}: the container is not running on a "
                               "bridge network")
            ip = row["address"]
            tname = target["Name"].lstrip("/")
            entries.append((ip, [alias, target["Id"][:12], tname] if alias != tname
                            else [alias, target["Id"][:12]]))
            prefix = alias.upper().replace("-", "_").replace(".", "_")
            env.append(f"{prefix}_NAME=/{me}/{alias}")
            ports = sorted(target["Config"].get("ExposedPorts") or {},
                           key=lambda k: (int(k.split("/")[0]), k))
            for i, key in enumerate(ports):
                port, _, proto = key.partition("/")
                base = f"{prefix}_PORT_{port}_{proto.upper()}"
                if i == 0:
                    env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
                env += [f"{base}={proto}://{ip}:{port}", f"{base}_ADDR={ip}",
                        f"{base}_PORT={port}", f"{base}_PROTO={proto}"]
            for item in target["Config"].get("Env") or []:
                key = item.partition("=")[0]
                if key not in ("HOME", "HOSTNAME", "PATH"):
                    env.append(f"{prefix}_ENV_{item}")
        return entries, env

    def own_addresses(self, cid: str) -> list[str]:
        return [r["address"] for r in self.db.query(
            "SELECT address FROM net_leases WHERE container_id=?", (cid,))]

    # ---- repair -------------------------------------------------------------------------
    def repair(self) -> list[str]:
        """Leases/ports whose supervisor is gone, their rules and veths; idle bridges."""
        from sdk.tasks.procs import alive

        done = []
        dead = {r["container_id"] for r in self.db.query(
            "SELECT container_id, holder_pid, holder_start FROM net_leases")
            if not alive(r["holder_pid"], r["holder_start"])}
        for cid in sorted(dead):
            self.release_container(cid, explicit=True)
            done.append(f"network endpoints of {cid[:12]}")
        live_ports = {r["container_id"] for r in self.db.query(
            "SELECT DISTINCT container_id FROM net_leases")}
        stale = [r["container_id"] for r in self.db.query(
            "SELECT DISTINCT container_id FROM net_ports") if r["container_id"] not in live_ports]
        for cid in stale:
            self.release_container(cid)
        with host_lock():
            for net in [self._row(r) for r in self.db.query("SELECT * FROM networks")]:
                if net["driver"] != "bridge":
                    continue
                if self.db.one("SELECT 1 FROM net_leases WHERE network_id=?", (net["id"],)):
                    continue
                if self._delete_bridge(net):
                    done.append(f"idle bridge {net['bridge']}")
            try:
                done += self._orphan_rules()
            except SdkError:
                pass          # no iptables here: nothing of ours can be there either
        return done

    def _orphan_rules(self) -> list[str]:
        """Network rules of bridges that no longer exist (any engine's: checked under the
        host lock, which every bridge creation holds until its rules are in)."""
        import re

        from sdk.network.netlink import Netlink
        from sdk.network.rules import delete_tagged

        fw = self.firewall
        if fw is None:
            return []
        tags = set(re.findall(r'berth:net:([^" ]+)', fw.save("filter") + fw.save("nat")))
        with Netlink() as nl:
            gone = sorted(t for t in tags if nl.link(t) is None)
        if gone:
            delete_tagged(fw, [f"berth:net:{t}" for t in gone])
        return [f"rules of removed bridge {t}" for t in gone]


def _bind(proto: str, host_ip: str, candidates: Sequence[int]) -> tuple[socket.socket, int]:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    last: OSError | None = None
    for port in candidates:
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host_ip, port))
            s.set_inheritable(False)
            return s, s.getsockname()[1]
        except OSError as exc:
            s.close()
            last = exc
    where = f"{host_ip}:{candidates[0]}" if len(candidates) == 1 else \
        f"{host_ip}:{candidates[0]}-{candidates[-1]}"
    reason = "port is already allocated" if last and last.errno == 98 else \
        (last.strerror if last else "failed")
    raise Conflict(f"Bind for {where}/{proto} failed: {reason}")


def _network_doc(name: str, nid: str, driver: str, created: str, subnet: str, gateway: str,
                 ip_range: str, internal: bool, labels: dict[str, str],
                 options: dict[str, str]) -> dict[str, Any]:
    config = []
    if subnet:
        entry = {"Subnet": subnet, "Gateway": gateway}
        if ip_range:
            entry["IPRange"] = ip_range
        config.append(entry)
    return {"Name": name, "Id": nid, "Created": created, "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {},
                                          "Config": config},
            "Internal": internal, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
            "Options": options, "Labels": labels}


__all__ = ["NetworkService", "Attachment", "Endpoint", "veth_name", "cleared_settings"]
