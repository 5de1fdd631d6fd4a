"""Bridge devices: created on first use, re-created when missing, their address,
sysctls and firewall rules; subnet choice and other engines' idle bridges."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any

from sdk.errors import Conflict
from sdk.network import ipam
from sdk.network.base import ServiceBase
from sdk.network.locks import host_lock
from sdk.store.db import dumps

if TYPE_CHECKING:
    from sdk.network.netlink import Netlink


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass


class BridgeDevices(ServiceBase):
    """Reconciles bridge devices with the network records."""

    def ensure_bridge(self, net: Mapping[str, Any], nl: Netlink | None = None) -> None:
        from sdk.network.netlink import Netlink

        own = nl is None
        nl = nl or Netlink()
        try:
            present = nl.link(net["bridge"]) is not None
        finally:
            if own:
                nl.close()
        if present:
            if self.firewall is not None and self._rules_changed(net):
                with host_lock():       # daemon.json (icc, ip-masq) changed since
                    self._apply_rules(net)
            return
        with host_lock():
            self._ensure_bridge_locked(net)

    def _rules_key(self, net: Mapping[str, Any]) -> str:
        return f"net-rules:{net['bridge']}"

    def _rules_digest(self, net: Mapping[str, Any]) -> str:
        from sdk.network.options import policy
        from sdk.network.rules import rules_digest

        pol = policy(net, self.config, self.mtu)
        return rules_digest(net["bridge"], str(net["subnet"]),
                            internal=bool(net["doc"].get("Internal")),
                            masquerade=pol.masquerade, icc=pol.icc)

    def _rules_changed(self, net: Mapping[str, Any]) -> bool:
        """Whether the rules last applied for ``net`` differ from what daemon.json and the
        network's options ask for now (one database read; no iptables-save)."""
        row = self.db.one("SELECT value FROM meta WHERE key=?", (self._rules_key(net),))
        return row is None or row["value"] != self._rules_digest(net)

    def _apply_rules(self, net: Mapping[str, Any]) -> None:
        """This network's rules, replacing whatever was there for its bridge (under the
        host lock); remembered by digest."""
        from sdk.network.options import policy
        from sdk.network.rules import ensure_network

        if self.firewall is None:
            return
        pol = policy(net, self.config, self.mtu)
        ensure_network(self.firewall, net["bridge"], str(net["subnet"]),
                       internal=bool(net["doc"].get("Internal")),
                       masquerade=pol.masquerade, icc=pol.icc)
        with self.db.write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (self._rules_key(net), self._rules_digest(net)))

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
                nl.add_bridge(net["bridge"], mac, self.mtu_of(net), f"berth:{self.db.path}")
                link = nl.link(net["bridge"])
                assert link is not None
            if IPv4Interface((gw, subnet.prefixlen)) not in nl.addresses(link.index):
                nl.add_address(link.index, IPv4Interface((gw, subnet.prefixlen)))
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{net['bridge']}/route_localnet", "1")
        if self.config.ip_forward and not net["doc"].get("Internal"):
            _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        self._apply_rules(net)

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
        with self.db.write() as conn:
            conn.execute("DELETE FROM meta WHERE key=?", (self._rules_key(net),))
        return gone

    def mtu_of(self, net: Mapping[str, Any]) -> int:
        """The MTU of ``net``'s bridge and veths (-o com.docker.network.driver.mtu)."""
        from sdk.network.options import policy

        return policy(net, self.config, self.mtu).mtu
