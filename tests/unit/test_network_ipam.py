"""IPAM: pools, overlap refusal, serial address choice, container options."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from sdk.containers.options import build_configs
from sdk.errors import Conflict, InvalidArgument
from sdk.network import ipam

ETH0 = (IPv4Network("192.0.2.0/24"), "the host route 192.0.2.0/24 dev eth0")


def test_default_pools_follow_docker() -> None:
    pools = ipam.pools_from(None)
    assert pools[:4] == [IPv4Network("172.17.0.0/16"), IPv4Network("172.18.0.0/16"),
                         IPv4Network("172.19.0.0/16"), IPv4Network("172.20.0.0/16")]
    assert IPv4Network("192.168.0.0/20") in pools and len(pools) == 3 + 12 + 16
    custom = ipam.pools_from([{"base": "10.10.0.0/16", "size": 24}])
    assert custom[0] == IPv4Network("10.10.0.0/24") and len(custom) == 256


def test_choose_skips_taken_and_routes() -> None:
    taken = [(IPv4Network("172.17.0.0/16"), "docker0"), ETH0,
             (IPv4Network("172.18.5.0/24"), "network x")]
    assert ipam.choose_subnet(ipam.pools_from(None), taken) == IPv4Network("172.19.0.0/16")
    with pytest.raises(Conflict, match="fully subnetted"):
        ipam.choose_subnet([IPv4Network("192.0.2.0/25")], taken)


def test_overlap_is_refused_with_the_culprit_named() -> None:
    with pytest.raises(Conflict, match="192.0.2.0/24 dev eth0"):
        ipam.check_free(IPv4Network("192.0.2.128/25"), [ETH0])
    ipam.check_free(IPv4Network("10.0.0.0/8"), [ETH0])


def test_serial_allocation_wraps_and_skips_reserved() -> None:
    net = IPv4Network("10.1.0.0/29")       # .1 gateway, .2-.6 usable
    gw = int(IPv4Address("10.1.0.1"))
    first = ipam.next_address(net, None, {gw}, 0)
    assert first == IPv4Address("10.1.0.2")
    # a just-released address is not reused at once: allocation continues after `last`
    assert ipam.next_address(net, None, {gw}, int(first)) == IPv4Address("10.1.0.3")
    assert ipam.next_address(net, None, {gw}, int(IPv4Address("10.1.0.6"))) == first
    used = {gw} | {int(IPv4Address(f"10.1.0.{i}")) for i in range(2, 7)}
    with pytest.raises(Conflict, match="no available"):
        ipam.next_address(net, None, used, 0)
    rng = IPv4Network("10.1.0.4/30")
    assert ipam.next_address(net, rng, {gw}, 0) == IPv4Address("10.1.0.4")


def test_gateway_mac_and_parsing() -> None:
    net = IPv4Network("10.2.0.0/24")
    assert ipam.gateway_for(net, None) == IPv4Address("10.2.0.1")
    assert ipam.gateway_for(net, "10.2.0.254") == IPv4Address("10.2.0.254")
    with pytest.raises(InvalidArgument, match="not in subnet"):
        ipam.gateway_for(net, "10.3.0.1")
    assert ipam.mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
    for bad in ("10.0.0.0", "10.0.0.0/33", "nonsense/8"):
        with pytest.raises(InvalidArgument, match="invalid subnet"):
            ipam.parse_subnet(bad)


def _build(**kw: object) -> tuple[dict, dict]:
    return build_configs("busybox", {"Cmd": ["sh"], "ExposedPorts": {"9000/tcp": {}}},
                         None, kw)


def test_container_network_options() -> None:
    cfg, host = _build(ports=["8080:80", "127.0.0.1::53/udp"], expose=["7000"])
    assert host["NetworkMode"] == "bridge"
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert set(cfg["ExposedPorts"]) == {"9000/tcp", "7000/tcp", "80/tcp", "53/udp"}
    _, host = _build(network="mynet", ip="10.5.0.9", network_aliases=["db"])
    assert host["_berth_endpoint"] == {"Network": "mynet", "IPv4Address": "10.5.0.9",
                                       "Aliases": ["db"], "MacAddress": ""}
    _, host = _build(links=["db:database", "cache"])
    assert host["Links"] == ["db:database", "cache:cache"]


@pytest.mark.parametrize("kw, words", [
    ({"network_mode": "none", "ports": ["80"]}, "port publishing"),
    ({"network_mode": "container:x", "hostname": "h"}, "hostname"),
    ({"ip": "172.17.0.9"}, "user defined networks only"),
    ({"network_aliases": ["a"]}, "user defined networks"),
    ({"network": "n", "ip": "300.1.1.1"}, "invalid --ip"),
    ({"mac_address": "01:00:00:00:00:01"}, "unicast"),
    ({"dns": ["not-an-ip"]}, "--dns"),
    ({"extra_hosts": ["h:nope"]}, "--add-host"),
    ({"network_mode": "bad name!"}, "invalid network"),
])
def test_bad_network_options(kw: dict, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        _build(**kw)
