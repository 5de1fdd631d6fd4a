"""Firewall rule generation against a fake iptables boundary."""

from __future__ import annotations

from sdk.network import rules
from sdk.network.ports import Published


class FakeFirewall:
    """Keeps an iptables-save-like text per table; restore applies -A/-I/-D/:chain."""

    def __init__(self) -> None:
        self.tables = {"filter": [":FORWARD ACCEPT [0:0]"],
                       "nat": [":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
                               ":POSTROUTING ACCEPT [0:0]"]}
        self.restores: list[str] = []

    def save(self, table: str) -> str:
        return "\n".join(self.tables[table]) + "\n"

    def restore(self, text: str) -> None:
        self.restores.append(text)
        table = ""
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") or line.startswith("-A "):
                self.tables[table].append(line)
            elif line.startswith("-I "):
                _, chain, pos, rest = line.split(" ", 3)
                body = f"-A {chain} {rest}"
                idx = [i for i, ln in enumerate(self.tables[table])
                       if ln.startswith(f"-A {chain} ")]
                at = idx[int(pos) - 1] if len(idx) >= int(pos) else len(self.tables[table])
                self.tables[table].insert(at, body)
            elif line.startswith("-D "):
                self.tables[table].remove("-A" + line[2:])

    def rules(self, table: str, chain: str) -> list[str]:
        return [ln for ln in self.tables[table] if ln.startswith(f"-A {chain} ")]


def test_network_setup_is_idempotent_and_ordered() -> None:
    fw = FakeFirewall()
    rules.ensure_network(fw, "br-a", "10.1.0.0/24", internal=False, masquerade=True)
    rules.ensure_network(fw, "br-b", "10.2.0.0/24", internal=False, masquerade=True)
    rules.ensure_network(fw, "br-a", "10.1.0.0/24", internal=False, masquerade=True)
    fwd = fw.rules("filter", "BERTH-FORWARD")
    assert fwd[0] == "-A BERTH-FORWARD -j BERTH-PORTS"
    drops = [i for i, r in enumerate(fwd) if r.endswith("-j DROP")]
    accepts = [i for i, r in enumerate(fwd) if r.endswith("-j ACCEPT")]
    assert len(drops) == 2 and max(drops) < min(accepts)    # isolation before any accept
    assert fw.rules("filter", "FORWARD") == ["-A FORWARD -j BERTH-USER",
                                             "-A FORWARD -j BERTH-FORWARD"]
    masq = fw.rules("nat", "BERTH-POSTROUTING")
    assert sum("-s 10.1.0.0/24 ! -o br-a" in r and "MASQUERADE" in r for r in masq) == 1
    assert fw.rules("nat", "PREROUTING") == [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH"]
    # the admin's chain is declared once and never flushed or re-declared
    assert sum(ln.startswith(":BERTH-USER") for ln in fw.tables["filter"]) == 1
    assert all(":BERTH-USER" not in text for text in fw.restores[1:])


def test_internal_network_has_no_masquerade_or_outbound() -> None:
    head, tail, nat = rules.network_rules("br-i", "10.9.0.0/24", internal=True,
                                          masquerade=True)
    assert not any("! -o br-i" in r and "MASQUERADE" in r for r in nat)
    assert all(r.endswith("-j DROP") for r in head) and len(head) == 2
    assert tail == ['-i br-i -o br-i -m comment --comment "berth:net:br-i" -j ACCEPT']


def test_port_rules_and_tagged_cleanup() -> None:
    fw = FakeFirewall()
    rules.ensure_network(fw, "br-a", "10.1.0.0/24", internal=False, masquerade=True)
    ports = [Published("tcp", "0.0.0.0", 8080, 80), Published("udp", "127.0.0.1", 5353, 53)]
    fw.restore(rules.add_ports("c1", "br-a", "10.1.0.2", ports).text())
    fw.restore(rules.add_ports("c2", "br-a", "10.1.0.3",
                               [Published("tcp", "0.0.0.0", 9090, 90)]).text())
    dnat = fw.rules("nat", "BERTH")
    assert any("--dport 8080" in r and "--to-destination 10.1.0.2:80" in r and "-d " not in r
               for r in dnat)
    assert any("-d 127.0.0.1/32 -p udp" in r and "10.1.0.2:53" in r for r in dnat)
    assert len(fw.rules("filter", "BERTH-PORTS")) == 3
    assert rules.delete_tagged(fw, ["berth:c1"]) == 4
    assert len(fw.rules("nat", "BERTH")) == 1 and "c2" in fw.rules("nat", "BERTH")[0]
    assert rules.delete_tagged(fw, ["berth:c1"]) == 0
    rules.delete_tagged(fw, ["berth:net:br-a", "berth:c2"])
    assert fw.rules("filter", "BERTH-FORWARD") == ["-A BERTH-FORWARD -j BERTH-PORTS"]
    assert fw.rules("nat", "BERTH-POSTROUTING") == []
