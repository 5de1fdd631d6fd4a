"""One container start's network side: endpoints, leases, held host ports.

A running container holds, per network, a lease row (its address and the veth name)
and, per published port, a ``net_ports`` row plus a bound (never listening) socket in
its supervisor: the socket makes "port already in use" a clear error at start and keeps
anyone else off the port while the container runs.  Leases and ports name the
supervisor that holds them (pid + start time), so repair can tell a starting container
from a dead one.

The container's network namespace is the one its init is cloned into: the supervisor
adds the veth pair in ``on_created`` (the peer is created straight inside the new
namespace as ethN) and configures it through a netlink socket opened in there.  When
the container dies, its namespace and with it the veth pair go away in the kernel,
even after a ``kill -9`` of everything berth runs.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any

from sdk.errors import Conflict, InvalidArgument, SdkError
from sdk.network import ipam
from sdk.network.base import ServiceBase
from sdk.network.locks import host_lock
from sdk.network.ports import Published
from sdk.network.records import BUILTIN, network_event

if TYPE_CHECKING:
    from sdk.network.service import NetworkService

PREFIX = "bv"      # host-side veth names: bv + 12 hex of the container + network index


def veth_name(cid: str, index: int) -> str:
    return f"{PREFIX}{cid[:12]}{index:x}"



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
    doc: dict[str, Any] | None = None   # the record being started (its hosts file)
    linked: bool = False                # --link rules (icc false) are in place

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
                nl.add_veth(ep.veth, ep.iface, pid, br.index, svc.mtu_of(ep.network),
                            ep.mac)
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
        if self.doc is not None and self.doc["HostConfig"].get("Links") and \
                svc.firewall is not None:
            from sdk.network.rules import Batch

            lines = svc.link_rules_for(self.cid, self.doc, self.endpoints[0])
            if lines:
                self.linked = True
                svc.firewall.restore(Batch([f"-A BERTH-PORTS {r}" for r in lines]).text())
        user = [ep.network["id"] for ep in self.endpoints if ep.user_defined]
        if user:
            svc.announce(self.cid, user, self.doc)

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
            entry.update(endpoint_doc(ep, self.cid))
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
        self.service.release_container(self.cid, explicit=explicit,
                                       had_ports=bool(self.ports) or self.linked)


def endpoint_doc(ep: Endpoint, cid: str) -> dict[str, Any]:
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


class Endpoints(ServiceBase):
    """Leases and held ports of a start (``prepare``) and their release."""

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
        if not nets and not (doc.get("_berth") or {}).get("detached"):
            # never configured: the network mode; disconnected from all: none (docker)
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
        att = Attachment(self, cid, doc=doc)
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
        network_event(conn, "connect", net["id"], net["name"], net["driver"], cid)
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
        rows = self.db.query("SELECT l.network_id, l.veth, l.address, l.names, n.name, "
                             "n.driver FROM net_leases l LEFT JOIN networks n "
                             "ON n.id=l.network_id WHERE l.container_id=?", (cid,))
        if explicit and rows:
            from sdk.network.netlink import Netlink

            with Netlink() as nl:
                for r in rows:
                    nl.delete_link(r["veth"])
        with self.db.write() as conn:
            conn.execute("DELETE FROM net_leases WHERE container_id=?", (cid,))
            for r in rows:
                network_event(conn, "disconnect", r["network_id"], r["name"], r["driver"], cid)
            ports = conn.execute("DELETE FROM net_ports WHERE container_id=?", (cid,)).rowcount
        if (ports or had_ports) and self.firewall is not None:
            from sdk.network.rules import delete_tagged

            delete_tagged(self.firewall, [f"berth:{cid}"])
        if rows:
            self.withdraw(cid, rows)


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
