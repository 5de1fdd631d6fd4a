"""Network records: the ``networks`` rows (Docker's inspect document in ``doc``),
create, list, inspect, remove, prune, and the built-in bridge/host/none networks."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from sdk.errors import Conflict, InvalidArgument, NetworkNotFound, SdkError
from sdk.events import record as log_event
from sdk.network import ipam
from sdk.network.base import ServiceBase
from sdk.network.locks import host_lock
from sdk.network.options import effective_options
from sdk.network.options import validate as validate_options
from sdk.store.db import dumps, loads

BUILTIN = {"bridge": "bridge", "host": "host", "none": "null"}


def network_event(conn: Any, action: str, nid: str, name: str, driver: str,
                  container: str | None = None) -> None:
    """Docker's network event (create, destroy, connect, disconnect) in ``conn``'s
    transaction: Actor ID = network id; Attributes name, type (+ container)."""
    attrs = {"container": container} if container else {}
    log_event(conn, "network", action, nid, {**attrs, "name": name, "type": driver})


class NetworkRecords(ServiceBase):
    """CRUD of network records (the bridge device side is in bridges.py)."""

    def _row(self, row: Any) -> dict[str, Any]:
        return {"id": row["id"], "name": row["name"], "driver": row["driver"],
                "bridge": row["bridge"], "subnet": row["subnet"], "doc": loads(row["doc"])}

    def _ensure_builtins(self) -> None:
        if self.db.one("SELECT 1 FROM networks WHERE name='bridge'") is not None:
            return
        from sdk._internal.names import new_id
        from sdk._internal.timefmt import now_rfc3339
        from sdk.engine import DEFAULT_ROOT

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
            doc = network_doc("bridge", nid, "bridge", now_rfc3339(), str(subnet),
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
                                 (oid, name, driver, "", "", 0, dumps(network_doc(
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
        if net["driver"] == "bridge":
            doc["Options"] = effective_options(net, self.config, self.mtu)
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
        from sdk._internal.timefmt import now_rfc3339

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
        opts = validate_options(options or {})
        bridge = opts.get("com.docker.network.bridge.name") or f"br-{nid[:12]}"
        with host_lock():
            self._check_bridge_name(bridge)
            taken = self._taken()
            if net:
                ipam.check_free(net, taken)
            else:
                net = self._choose(taken)
            gw = ipam.gateway_for(net, gateway)
            opts.setdefault("com.docker.network.bridge.name", bridge)
            doc = network_doc(name, nid, driver, now_rfc3339(), str(net), str(gw),
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
                self._undo_bridge(bridge)
                with self.db.write() as conn:
                    conn.execute("DELETE FROM networks WHERE id=?", (nid,))
                raise
            with self.db.write() as conn:     # only once the bridge is there
                network_event(conn, "create", nid, name, driver)
        return self.get(nid)

    def _check_bridge_name(self, bridge: str) -> None:
        """-o com.docker.network.bridge.name must not name another network's bridge or
        a device that is not a bridge (its addresses and rules would be changed)."""
        from sdk.network.netlink import Netlink

        row = self.db.one("SELECT name FROM networks WHERE bridge=?", (bridge,))
        if row is not None:
            raise Conflict(f"bridge {bridge} is already used by network {row['name']}")
        with Netlink() as nl:
            link = nl.link(bridge)
        if link is not None and link.kind != "bridge":
            raise Conflict(f"bridge name {bridge}: a {link.kind or 'network'} device of "
                           "that name exists")
        if link is not None and link.alias.startswith("berth:"):
            raise Conflict(f"bridge {bridge} belongs to the berth engine of "
                           f"{link.alias[len('berth:'):]}")

    def _undo_bridge(self, bridge: str) -> None:
        """A create that failed half-way: remove the bridge (and its rules) if this engine
        made it; a pre-existing bridge named by -o ...bridge.name is left as it was."""
        from sdk.network.netlink import Netlink

        with Netlink() as nl:
            link = nl.link(bridge)
        if link is not None and link.alias == f"berth:{self.db.path}":
            try:
                self._delete_bridge({"bridge": bridge})
            except SdkError:
                pass              # the original error is the one to report

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
                network_event(conn, "destroy", net["id"], net["name"], net["driver"])

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


def network_doc(name: str, nid: str, driver: str, created: str, subnet: str, gateway: str,
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
