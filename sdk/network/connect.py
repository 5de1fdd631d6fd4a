"""``network connect`` / ``disconnect``: configured networks of a container, and
the live veth of a running one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network
from typing import Any

from sdk.errors import Conflict, InvalidArgument
from sdk.network import ipam
from sdk.network.base import ServiceBase
from sdk.network.endpoint import Endpoint, endpoint_doc
from sdk.network.locks import host_lock
from sdk.network.records import BUILTIN, network_event


class Connections(ServiceBase):
    """Connect a container to a network and disconnect it, running or not."""

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
            d.setdefault("_berth", {}).pop("detached", None)
            if live is not None:
                networks[net["name"]].update(endpoint_doc(live, d["Id"]))

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
                nl.add_veth(ep.veth, ep.iface, pid, br.index, self.mtu_of(net), ep.mac)
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
                network_event(conn, "disconnect", net["id"], net["name"], net["driver"], cid)
            raise
        if net["name"] not in BUILTIN:
            self.announce(cid, [net["id"]])
        self.write_hosts_of(doc)
        return ep

    def disconnect(self, ref: str, container: str, *, force: bool = False) -> None:
        from sdk.network.netlink import Netlink

        net = self.get(ref)
        doc = self.engine.tasks.get(container)
        nets = dict(self.configured(doc))
        row = self.db.one("SELECT network_id, veth, address, names FROM net_leases WHERE "
                          "container_id=? AND network_id=?", (doc["Id"], net["id"]))
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
                network_event(conn, "disconnect", net["id"], net["name"], net["driver"],
                              doc["Id"])
            self.withdraw(doc["Id"], [row])
            self.write_hosts_of(doc)

        def change(d: dict[str, Any]) -> None:
            networks = d.setdefault("NetworkSettings", {}).setdefault("Networks", {})
            for n, cfg in nets.items():
                networks.setdefault(n, dict(cfg))
            networks.pop(net["name"], None)
            if not networks:      # not its network mode's network again at the next start
                d.setdefault("_berth", {})["detached"] = True

        self.engine.container_store.modify(doc["Id"], change)
