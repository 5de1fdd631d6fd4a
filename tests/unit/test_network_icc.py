"""icc rules, legacy-link accepts and bridge driver options (no kernel: a fake iptables)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sdk.errors import InvalidArgument
from sdk.network import options, rules
from tests.unit.test_network_rules import FakeFirewall


def _same_bridge(fwd: list[str], bridge: str) -> list[str]:
    return [r for r in fwd if r.startswith(f"-A BERTH-FORWARD -i {bridge} -o {bridge} ")]


def test_icc_false_drops_bridge_to_same_bridge_before_any_accept() -> None:
    fw = FakeFirewall()
    rules.ensure_network(fw, "br-a", "10.1.0.0/24", internal=False, masquerade=True,
                         icc=False)
    rules.ensure_network(fw, "br-b", "10.2.0.0/24", internal=False, masquerade=True)
    fwd = fw.rules("filter", "BERTH-FORWARD")
    same_a = _same_bridge(fwd, "br-a")
    assert len(same_a) == 1 and same_a[0].endswith("-j DROP")
    assert "! --ctstate RELATED,ESTABLISHED" in same_a[0]     # hairpin replies pass
    drop_at = fwd.index(same_a[0])
    assert all(not r.endswith("-j ACCEPT") for r in fwd[:drop_at])
    # outbound and masquerade are untouched by icc
    assert any(r.startswith("-A BERTH-FORWARD -i br-a -m comment") and
               r.endswith("ACCEPT") for r in fwd)
    assert any("-s 10.1.0.0/24 ! -o br-a" in r for r in fw.rules("nat", "BERTH-POSTROUTING"))
    # the other network has icc true: docker's explicit ACCEPT, no drop
    same_b = _same_bridge(fwd, "br-b")
    assert len(same_b) == 1 and same_b[0].endswith("-j ACCEPT")


def test_switching_icc_replaces_the_rule_and_removal_leaves_nothing() -> None:
    fw = FakeFirewall()
    rules.ensure_network(fw, "br-a", "10.1.0.0/24", internal=False, masquerade=True,
                         icc=False)
    rules.ensure_network(fw, "br-a", "10.1.0.0/24", internal=False, masquerade=True,
                         icc=True)
    same = _same_bridge(fw.rules("filter", "BERTH-FORWARD"), "br-a")
    assert len(same) == 1 and same[0].endswith("-j ACCEPT")
    assert rules.rules_digest("br-a", "10.1.0.0/24", internal=False, masquerade=True,
                              icc=True) != rules.rules_digest(
        "br-a", "10.1.0.0/24", internal=False, masquerade=True, icc=False)
    rules.delete_tagged(fw, ["berth:net:br-a"])
    assert fw.rules("filter", "BERTH-FORWARD") == ["-A BERTH-FORWARD -j BERTH-PORTS"]
    assert fw.rules("nat", "BERTH-POSTROUTING") == []


def test_internal_network_with_icc_false_has_no_accept() -> None:
    head, tail, _nat = rules.network_rules("br-i", "10.9.0.0/24", internal=True,
                                           masquerade=True, icc=False)
    assert tail == [] and len(head) == 3 and all(r.endswith("-j DROP") for r in head)


def test_published_port_accept_is_for_dnat_only_and_links_open_both_ways() -> None:
    from sdk.network.ports import Published

    filt, _nat = rules.port_rules("c1", "br-a", "10.1.0.2", [Published("tcp", "", 8080, 80)])
    assert "--ctstate DNAT" in filt[0]
    lines = rules.link_rules("c2", "br-a", "10.1.0.3", "10.1.0.2", [(80, "tcp"), (53, "udp")])
    assert len(lines) == 4
    assert "-s 10.1.0.3/32 -d 10.1.0.2/32 -i br-a -o br-a -p tcp -m tcp --dport 80" in lines[0]
    assert "-s 10.1.0.2/32 -d 10.1.0.3/32 -i br-a -o br-a -p tcp -m tcp --sport 80" in lines[1]
    assert all('"berth:c2"' in r for r in lines)


@pytest.mark.parametrize(("opts", "words"), [
    ({options.ICC: "maybe"}, "expected true or false"),
    ({options.MASQ: ""}, "expected true or false"),
    ({options.MTU: "9"}, "between 68 and 65535"),
    ({options.MTU: "15OO"}, "between 68 and 65535"),
    ({options.NAME: "a-very-long-bridge-name"}, "at most 15 characters"),
    ({options.NAME: "bad name"}, "invalid bridge name"),
    ({"com.docker.network.bridge.enable-icc": "false"}, "not supported by berth"),
    ({"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}, "not supported"),
])
def test_bad_options_name_the_option(opts: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words) as err:
        options.validate(opts)
    assert "\n" not in str(err.value)


def test_options_normalized_and_policy() -> None:
    got = options.validate({options.ICC: "F", options.MTU: "01400", "my.own": "x"})
    assert got == {options.ICC: "false", options.MTU: "1400", "my.own": "x"}
    cfg = SimpleNamespace(icc=False, ip_masq=True)
    user = {"name": "u", "doc": {"Options": got}}
    assert options.policy(user, cfg, 1500) == options.BridgePolicy(False, True, 1400)
    assert options.policy({"name": "u", "doc": {"Options": {}}}, cfg, 1500).icc
    default = {"name": "bridge", "doc": {"Options": {options.ICC: "true"}}}
    assert not options.policy(default, cfg, 1500).icc      # daemon.json wins, as it is now
    assert options.effective_options(default, cfg, 1500)[options.ICC] == "false"
    cfg.ip_masq = False
    assert not options.policy(user, cfg, 1500).masquerade


def test_subnet_with_host_bits_and_odd_gateways_are_refused() -> None:
    from ipaddress import IPv4Network

    from sdk.network import ipam

    with pytest.raises(InvalidArgument, match="it should be 10.219.9.0/24"):
        ipam.parse_subnet("10.219.9.5/24")
    assert str(ipam.parse_subnet("10.219.9.0/24")) == "10.219.9.0/24"
    net = IPv4Network("10.219.9.0/24")
    for gw in ("10.219.9.0", "10.219.9.255"):
        with pytest.raises(InvalidArgument, match="network or broadcast"):
            ipam.gateway_for(net, gw)
    with pytest.raises(InvalidArgument, match="too small"):
        ipam.gateway_for(IPv4Network("10.219.9.0/31"), "10.219.9.1")
