"""berth's firewall rules, in its own iptables chains (generation is pure; applying
execs iptables-restore, the one process boundary, so it can be faked in tests).

Layout (coexists with Docker's DOCKER* and Podman's chains; only jumps are added to the
built-in chains, at the top):

filter FORWARD      -> BERTH-USER (the admin's hook: created once, never flushed)
                    -> BERTH-FORWARD: -j BERTH-PORTS, then every network's isolation
                       drops (nothing new enters a bridge from outside; --internal:
                       nothing leaves either; icc false: nothing from the bridge back
                       into it), then every network's accepts (icc true: an explicit
                       ACCEPT bridge -> same bridge, as docker adds)
filter BERTH-PORTS  per published port: ACCEPT of DNATed traffic towards the container's
                       address:port (not of traffic sent to the container's address
                       directly, which icc false must stop); per legacy link with icc
                       false: ACCEPT of the target's exposed ports, both directions
nat PREROUTING/OUTPUT (--dst-type LOCAL) -> BERTH: per published port DNAT.  OUTPUT
                       includes 127.0.0.0/8, with route_localnet on the bridge, so the
                       host's own 127.0.0.1:PORT works without a userland proxy.
nat POSTROUTING     -> BERTH-POSTROUTING: per network MASQUERADE outbound, loopback-
                       sourced and hairpin (DNAT back into the same bridge) traffic.

Every rule berth adds carries a comment ("berth:net:<bridge>" or "berth:<container id>")
so cleanup finds them even when nothing else remembers them (crash repair).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sdk.errors import RuntimeFailure
from sdk.network.ports import Published

FILTER_CHAINS = ("BERTH-USER", "BERTH-FORWARD", "BERTH-PORTS")
NAT_CHAINS = ("BERTH", "BERTH-POSTROUTING")
HOOKS = (  # (table, built-in chain, rule) -- inserted at the top, in this order
    ("filter", "FORWARD", "-j BERTH-FORWARD"),
    ("filter", "FORWARD", "-j BERTH-USER"),
    ("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j BERTH"),
    ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL -j BERTH"),
    ("nat", "POSTROUTING", "-j BERTH-POSTROUTING"),
)


class Firewall(Protocol):
    def restore(self, text: str) -> None: ...
    def save(self, table: str) -> str: ...


class IptablesFirewall:
    """The real kernel boundary: iptables-restore --noflush / iptables-save."""

    def restore(self, text: str) -> None:
        res = subprocess.run(["iptables-restore", "-w", "--noflush"], input=text,
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            msg = (res.stderr.strip() or "failed").splitlines()[0]
            raise RuntimeFailure(f"iptables-restore: {msg}")

    def save(self, table: str) -> str:
        try:
            res = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                                 text=True, check=False)
        except FileNotFoundError:
            raise RuntimeFailure("iptables-save is not installed (Debian: apt-get install "
                                 "iptables), or set \"iptables\": false in daemon.json"
                                 ) from None
        return res.stdout if res.returncode == 0 else ""


@dataclass
class Batch:
    """An iptables-restore input for the filter and nat tables."""

    filter: list[str] = field(default_factory=list)
    nat: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = ""
        for name, lines in (("filter", self.filter), ("nat", self.nat)):
            if lines:
                out += f"*{name}\n" + "".join(ln + "\n" for ln in lines) + "COMMIT\n"
        return out

    def __bool__(self) -> bool:
        return bool(self.filter or self.nat)


def net_tag(bridge: str) -> str:
    return f'-m comment --comment "berth:net:{bridge}"'


def container_tag(cid: str) -> str:
    return f'-m comment --comment "berth:{cid}"'


def base_batch(saved_filter: str, saved_nat: str) -> Batch:
    """Chains and hook jumps that are missing (judged from iptables-save output)."""
    b = Batch()
    for table, chains, saved, lines in (("filter", FILTER_CHAINS, saved_filter, b.filter),
                                        ("nat", NAT_CHAINS, saved_nat, b.nat)):
        for chain in chains:
            if f":{chain} " not in saved:
                lines.append(f":{chain} - [0:0]")
        for hook_table, builtin, rule in HOOKS:
            if hook_table == table and f"-A {builtin} {rule}" not in saved:
                lines.append(f"-I {builtin} 1 {rule}")
    if "-A BERTH-FORWARD -j BERTH-PORTS" not in saved_filter:
        b.filter.append("-I BERTH-FORWARD 1 -j BERTH-PORTS")
    return b


def network_rules(bridge: str, subnet: str, *, internal: bool, masquerade: bool,
                  icc: bool = True) -> tuple[list[str], list[str], list[str]]:
    """(filter head, filter tail, nat) rule bodies (without -A CHAIN) for one network.

    The head rules (isolation drops) go right after the BERTH-PORTS jump, before any
    network's accepts, so one network's "outbound accept" never opens another bridge.
    ``icc`` false drops what the bridge forwards back into itself (container to
    container); published ports (DNATed, accepted in BERTH-PORTS) and the host's own
    traffic (not forwarded) still pass.
    """
    tag = net_tag(bridge)
    same = [f"-i {bridge} -o {bridge} {tag} -j ACCEPT"] if icc else []
    if internal:
        head = [f"-i {bridge} ! -o {bridge} {tag} -j DROP",
                f"! -i {bridge} -o {bridge} {tag} -j DROP"]
        tail = same
    else:
        head = [f"! -i {bridge} -o {bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED "
                f"{tag} -j DROP"]
        tail = same + [f"-i {bridge} {tag} -j ACCEPT", f"-o {bridge} {tag} -j ACCEPT"]
    if not icc:
        # replies of what BERTH-PORTS let in (a hairpin to a published port) pass
        head.append(f"-i {bridge} -o {bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED "
                    f"{tag} -j DROP")
    nat = [f"-s 127.0.0.0/8 -o {bridge} {tag} -j MASQUERADE",
           f"-s {subnet} -o {bridge} -m conntrack --ctstate DNAT {tag} -j MASQUERADE"]
    if masquerade and not internal:
        nat.insert(0, f"-s {subnet} ! -o {bridge} {tag} -j MASQUERADE")
    return head, tail, nat


def add_network(bridge: str, subnet: str, *, internal: bool, masquerade: bool,
                icc: bool = True) -> Batch:
    head, tail, nat = network_rules(bridge, subnet, internal=internal, masquerade=masquerade,
                                    icc=icc)
    return Batch([f"-I BERTH-FORWARD 2 {r}" for r in reversed(head)]
                 + [f"-A BERTH-FORWARD {r}" for r in tail],
                 [f"-A BERTH-POSTROUTING {r}" for r in nat])


def port_rules(cid: str, bridge: str, container_ip: str, ports: Sequence[Published]
               ) -> tuple[list[str], list[str]]:
    tag = container_tag(cid)
    filt, nat = [], []
    for p in ports:
        dest = "" if p.host_ip in ("", "0.0.0.0") else f"-d {p.host_ip}/32 "
        nat.append(f"{dest}-p {p.proto} -m {p.proto} --dport {p.host_port} {tag} "
                   f"-j DNAT --to-destination {container_ip}:{p.container_port}")
        filt.append(f"-d {container_ip}/32 -o {bridge} -p {p.proto} -m {p.proto} "
                    f"--dport {p.container_port} -m conntrack --ctstate DNAT {tag} -j ACCEPT")
    return filt, nat


def link_rules(cid: str, bridge: str, my_ip: str, target_ip: str,
               ports: Sequence[tuple[int, str]]) -> list[str]:
    """Legacy ``--link`` on a bridge with icc false (docker's rules): the linking
    container reaches the target's exposed ports, and the replies come back."""
    tag = container_tag(cid)
    out = []
    for port, proto in ports:
        out += [f"-s {my_ip}/32 -d {target_ip}/32 -i {bridge} -o {bridge} -p {proto} "
                f"-m {proto} --dport {port} {tag} -j ACCEPT",
                f"-s {target_ip}/32 -d {my_ip}/32 -i {bridge} -o {bridge} -p {proto} "
                f"-m {proto} --sport {port} {tag} -j ACCEPT"]
    return out


def add_ports(cid: str, bridge: str, container_ip: str, ports: Sequence[Published]) -> Batch:
    filt, nat = port_rules(cid, bridge, container_ip, ports)
    return Batch([f"-A BERTH-PORTS {r}" for r in filt], [f"-A BERTH {r}" for r in nat])


def tagged_deletes(saved: str, tags: Iterable[str]) -> list[str]:
    """``-D`` lines for every saved rule in berth's chains carrying one of ``tags``."""
    wanted = [f'--comment "{t}"' for t in tags] + [f"--comment {t} " for t in tags]
    out = []
    for line in saved.splitlines():
        if not line.startswith("-A BERTH"):
            continue
        if any(w in line + " " for w in wanted):
            out.append("-D" + line[2:])
    return out


def delete_tagged(fw: Firewall, tags: Sequence[str]) -> int:
    """Remove every berth rule carrying one of ``tags``; returns how many."""
    if not tags:
        return 0
    b = Batch(tagged_deletes(fw.save("filter"), tags), tagged_deletes(fw.save("nat"), tags))
    if b:
        fw.restore(b.text())
    return len(b.filter) + len(b.nat)


def ensure_network(fw: Firewall, bridge: str, subnet: str, *, internal: bool,
                   masquerade: bool, icc: bool = True) -> None:
    """Base chains + this network's rules, replacing whatever was there for the bridge."""
    saved_f, saved_n = fw.save("filter"), fw.save("nat")
    b = base_batch(saved_f, saved_n)
    tag = f"berth:net:{bridge}"
    b.filter += tagged_deletes(saved_f, [tag])
    b.nat += tagged_deletes(saved_n, [tag])
    add = add_network(bridge, subnet, internal=internal, masquerade=masquerade, icc=icc)
    b.filter += add.filter
    b.nat += add.nat
    fw.restore(b.text())


def rules_digest(bridge: str, subnet: str, *, internal: bool, masquerade: bool,
                 icc: bool) -> str:
    """A short fingerprint of a network's rules: stored when they are applied, so a
    start sees (without reading the kernel's tables) that daemon.json or berth changed
    them since."""
    import hashlib

    parts = network_rules(bridge, subnet, internal=internal, masquerade=masquerade, icc=icc)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
