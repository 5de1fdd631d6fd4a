"""Name resolution: /etc/hosts of the members of user-defined networks, legacy links."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sdk.errors import Conflict, InvalidArgument, SdkError
from sdk.network.base import ServiceBase
from sdk.store.db import loads


class Names(ServiceBase):
    """What each container resolves: network members, links, its own addresses."""

    def announce(self, cid: str, network_ids: Sequence[str],
                 doc: Mapping[str, Any] | None = None) -> None:
        """``cid`` joined ``network_ids``: write its own hosts file (under the file lock,
        so no concurrent join is lost) and append its entry to the other members' files.

        Only the changed lines are written: a start costs one small locked append per
        member, not a rebuild of every member's file from the database."""
        if doc is not None:
            try:
                self.write_hosts_of(doc)
            except SdkError:
                pass      # a --link target gone since the start wrote the file: keep it
        self._edit_members(cid, network_ids, add=True)

    def withdraw(self, cid: str, leases: Sequence[Mapping[str, Any]]) -> None:
        """``cid`` left (its ``leases`` rows are already deleted): remove its entries from
        the remaining members' hosts files."""
        self._edit_members(cid, [r["network_id"] for r in leases], add=False,
                           leases=leases)

    def _edit_members(self, cid: str, network_ids: Sequence[str], *, add: bool,
                      leases: Sequence[Mapping[str, Any]] = ()) -> None:
        from sdk.network.hostsfile import add_lines, hosts_line, remove_lines

        if not network_ids:
            return
        marks = ",".join("?" * len(network_ids))
        user = {r["id"] for r in self.db.query(
            f"SELECT id FROM networks WHERE id IN ({marks}) "
            "AND name NOT IN ('bridge','host','none')", tuple(network_ids))}
        if not user:
            return
        mine = {r["network_id"]: r for r in leases} if leases else {
            r["network_id"]: r for r in self.db.query(
                "SELECT network_id, address, names FROM net_leases WHERE container_id=?",
                (cid,))}
        lines: dict[str, list[str]] = {}      # member -> its lines to add or remove
        for nid in sorted(user):
            row = mine.get(nid)
            if row is None:
                continue
            line = hosts_line(row["address"], json.loads(row["names"]))
            for r in self.db.query("SELECT container_id FROM net_leases WHERE network_id=? "
                                   "AND container_id!=?", (nid, cid)):
                lines.setdefault(r["container_id"], []).append(line)
        store = self.engine.container_store
        for member, todo in lines.items():
            path = store.dir(member) / "hosts"
            try:
                if add:
                    add_lines(path, todo)
                else:
                    remove_lines(path, todo)
            except OSError:
                pass       # a member going away meanwhile: its file goes with it

    def write_hosts_of(self, doc: Mapping[str, Any]) -> None:
        """Rewrite ``doc``'s own hosts file from the database, under the file lock."""
        from sdk.containers.specgen import hosts_text
        from sdk.network.hostsfile import locked, write_fd

        path = doc.get("HostsPath") or ""
        if not path:
            return
        try:
            with locked(path, create=True) as fd:
                # the query runs while the file is locked: a member that appends to this
                # file after the lock is released is either in the query or appends later
                own, peers, gateway = self.names_for(doc)
                write_fd(fd, hosts_text(doc, own, peers, gateway))
        except OSError:
            pass

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

    def link_rules_for(self, cid: str, doc: Mapping[str, Any], ep: Any) -> list[str]:
        """Legacy --link on a network with icc false: docker's ACCEPT rules between the
        container (endpoint ``ep``) and each running target's exposed ports; none when
        icc is true (nothing to open) or a target is not on ``ep``'s network."""
        from sdk.network.options import policy
        from sdk.network.rules import link_rules

        if policy(ep.network, self.config, self.mtu).icc:
            return []
        out: list[str] = []
        for link in doc["HostConfig"].get("Links") or []:
            name = link.partition(":")[0]
            try:
                target = self.engine.container_store.get(name)
            except SdkError:
                continue
            row = self.db.one("SELECT address FROM net_leases WHERE container_id=? AND "
                              "network_id=?", (target["Id"], ep.network["id"]))
            if row is None:
                continue
            ports = []
            for key in sorted(target["Config"].get("ExposedPorts") or {}):
                port, _, proto = key.partition("/")
                ports.append((int(port), proto or "tcp"))
            out += link_rules(cid, ep.network["bridge"], str(ep.address.ip), row["address"],
                              ports)
        return out

    def own_addresses(self, cid: str) -> list[str]:
        return [r["address"] for r in self.db.query(
            "SELECT address FROM net_leases WHERE container_id=?", (cid,))]
