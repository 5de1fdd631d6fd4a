"""Repair: give back what dead supervisors held; remove idle bridges and orphan rules."""

from __future__ import annotations

from typing import Any

from sdk.errors import SdkError
from sdk.network.base import ServiceBase
from sdk.network.locks import host_lock


class Repair(ServiceBase):
    """Engine-start and ``berth system repair`` cleanup of the network side."""

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
            busy = []
            for net in [self._row(r) for r in self.db.query("SELECT * FROM networks")]:
                if net["driver"] != "bridge":
                    continue
                if self.db.one("SELECT 1 FROM net_leases WHERE network_id=?", (net["id"],)):
                    busy.append(net)
                    continue
                if self._delete_bridge(net):
                    done.append(f"idle bridge {net['bridge']}")
            try:
                done += self._orphan_rules()
                done += self._reconcile_rules(busy)
            except SdkError:
                pass          # no iptables here: nothing of ours can be there either
        return done

    def _reconcile_rules(self, nets: list[dict[str, Any]]) -> list[str]:
        """Rules of bridges in use, written again from the network records and daemon.json
        as they are now (icc or ip-masq changed, rules flushed by hand): a restart of the
        engine service brings them in line, as dockerd's does."""
        from sdk.network.netlink import Netlink

        if self.firewall is None or not nets:
            return []
        with Netlink() as nl:
            live = [n for n in nets if nl.link(n["bridge"]) is not None]
        done = []
        for net in live:
            changed = self._rules_changed(net)
            self._apply_rules(net)
            if changed:
                done.append(f"rules of bridge {net['bridge']}")
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
