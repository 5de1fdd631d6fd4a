"""Port specs: docker's -p/--expose syntax, docker-py's ports dict, the ps column."""

from __future__ import annotations

import pytest

from sdk.errors import InvalidArgument
from sdk.network.ports import exposed, format_ports, parse_publish, port_bindings


@pytest.mark.parametrize("spec, expected", [
    ("80", [("80/tcp", {"HostIp": "", "HostPort": ""})]),
    ("8080:80", [("80/tcp", {"HostIp": "", "HostPort": "8080"})]),
    ("127.0.0.1:8080:80", [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": "8080"})]),
    ("127.0.0.1::80", [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""})]),
    ("53:53/udp", [("53/udp", {"HostIp": "", "HostPort": "53"})]),
    ("8000-8001:80-81/tcp", [("80/tcp", {"HostIp": "", "HostPort": "8000"}),
                             ("81/tcp", {"HostIp": "", "HostPort": "8001"})]),
    ("7000-7001", [("7000/tcp", {"HostIp": "", "HostPort": ""}),
                   ("7001/tcp", {"HostIp": "", "HostPort": ""})]),
    ("9000-9009:80", [("80/tcp", {"HostIp": "", "HostPort": "9000-9009"})]),
])
def test_publish_forms(spec: str, expected: list) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("spec, words", [
    ("0:80", "between 1 and 65535"), ("80:65536", "between 1 and 65535"),
    ("80/sctp", "protocol"), ("80/xyz", "protocol"), ("abc", "not a number"),
    ("8000-8002:80-81", "differ in size"), ("90-80", "end before start"),
    ("1.2.3:80:80", "host address"), ("a:b:c:d", "expected"), ("[::1]:80:80", "IPv6"),
])
def test_publish_errors_name_the_problem(spec: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        parse_publish(spec)


def test_docker_py_ports_dict() -> None:
    got = port_bindings({"80/tcp": 8080, "81": None, "82/udp": ("127.0.0.1", 8082),
                         "83": [8083, 8084]})
    assert got == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                   "81/tcp": [{"HostIp": "", "HostPort": ""}],
                   "82/udp": [{"HostIp": "127.0.0.1", "HostPort": "8082"}],
                   "83/tcp": [{"HostIp": "", "HostPort": "8083"},
                              {"HostIp": "", "HostPort": "8084"}]}
    with pytest.raises(InvalidArgument):
        port_bindings({"80/tcp": 70000})


def test_expose_and_ps_column() -> None:
    assert exposed(["80", "7000-7001/udp"]) == {"80/tcp": {}, "7000/udp": {}, "7001/udp": {}}
    ports = {"443/tcp": None, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
             "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]}
    assert format_ports(ports) == ("127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp, 443/tcp")
    assert format_ports(None) == ""


def test_rates() -> None:
    from sdk.network.shaping import parse_rate

    assert parse_rate("10mbit", "--egress-rate") == 10_000_000
    assert parse_rate("1.5gbit", "--egress-rate") == 1_500_000_000
    assert parse_rate("2mbps", "--ingress-rate") == 16_000_000
    assert parse_rate(64000, "--ingress-rate") == 64000
    for bad in ("fast", "10xbit", "1bit", ""):
        with pytest.raises(InvalidArgument, match="rate"):
            parse_rate(bad, "--egress-rate")
