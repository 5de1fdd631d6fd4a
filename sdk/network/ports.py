"""Published and exposed ports: docker's ``-p``/``--expose`` syntax <-> PortBindings.

``-p`` forms: CPORT, HPORT:CPORT, IP:HPORT:CPORT, IP::CPORT, ranges (8000-8001:80-81)
and /tcp or /udp.  The record keeps Docker's shapes: ``Config.ExposedPorts``
({"80/tcp": {}}) and ``HostConfig.PortBindings`` ({"80/tcp": [{"HostIp": "",
"HostPort": "8080"}]}); an empty HostPort means "any free port".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdk.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True, slots=True)
class Published:
    """One concrete published port of a running container."""

    proto: str
    host_ip: str          # "0.0.0.0" = every host address
    host_port: int
    container_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def _port(text: str, spec: str) -> int:
    if not text.isdigit():
        raise InvalidArgument(f"invalid port {text!r} in {spec!r}: not a number")
    value = int(text)
    if not 1 <= value <= 65535:
        raise InvalidArgument(f"invalid port {value} in {spec!r}: must be between 1 and 65535")
    return value


def port_range(text: str, spec: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    lo = _port(first, spec)
    hi = _port(last, spec) if sep else lo
    if hi < lo:
        raise InvalidArgument(f"invalid port range {text!r} in {spec!r}: end before start")
    return lo, hi


def split_proto(text: str, spec: str) -> tuple[str, str]:
    port, sep, proto = text.partition("/")
    proto = proto.lower() if sep else "tcp"
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: use tcp or udp")
    return port, proto


def _host_ip(text: str, spec: str) -> str:
    if text.startswith("["):
        raise InvalidArgument(f"invalid publish spec {spec!r}: IPv6 host addresses are not "
                              "supported")
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidArgument(f"invalid host address {text!r} in {spec!r}") from None


def parse_publish(spec: str) -> list[tuple[str, dict[str, str]]]:
    """One ``-p`` value -> [("80/tcp", {"HostIp": "", "HostPort": "8080"}), ...]."""
    body, proto = split_proto(spec.strip(), spec)
    if body.startswith("["):
        raise InvalidArgument(f"invalid publish spec {spec!r}: IPv6 host addresses are not "
                              "supported")
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, host, cont = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, (host, cont) = "", parts
    elif len(parts) == 3:
        host_ip, host, cont = _host_ip(parts[0], spec) if parts[0] else "", parts[1], parts[2]
    else:
        raise InvalidArgument(f"invalid publish spec {spec!r}: expected "
                              "[[IP:][HOSTPORT]:]CONTAINERPORT[/PROTOCOL]")
    clo, chi = port_range(cont, spec)
    out = []
    if not host:
        for p in range(clo, chi + 1):
            out.append((f"{p}/{proto}", {"HostIp": host_ip, "HostPort": ""}))
        return out
    hlo, hhi = port_range(host, spec)
    if clo == chi and hhi > hlo:          # a host range for one port: any free one of it
        return [(f"{clo}/{proto}", {"HostIp": host_ip, "HostPort": f"{hlo}-{hhi}"})]
    if hhi - hlo != chi - clo:
        raise InvalidArgument(f"invalid publish spec {spec!r}: host and container port "
                              "ranges differ in size")
    for offset in range(chi - clo + 1):
        out.append((f"{clo + offset}/{proto}", {"HostIp": host_ip,
                                                "HostPort": str(hlo + offset)}))
    return out


def port_bindings(ports: Any) -> dict[str, list[dict[str, str]]]:
    """CLI ``-p`` strings or docker-py's ``ports`` dict -> HostConfig.PortBindings."""
    out: dict[str, list[dict[str, str]]] = {}
    if not ports:
        return out
    if isinstance(ports, str):
        ports = [ports]
    if isinstance(ports, Mapping):
        for key, value in ports.items():
            body, proto = split_proto(str(key), str(key))
            clo, chi = port_range(body, str(key))
            if clo != chi:
                raise InvalidArgument(f"invalid port {key!r}: ranges need the -p syntax")
            for binding in _docker_py_values(value, str(key)):
                out.setdefault(f"{clo}/{proto}", []).append(binding)
        return out
    for spec in ports:
        for key, binding in parse_publish(str(spec)):
            out.setdefault(key, []).append(binding)
    return out


def _docker_py_values(value: Any, key: str) -> list[dict[str, str]]:
    if value is None:
        return [{"HostIp": "", "HostPort": ""}]
    if isinstance(value, list):
        return [b for v in value for b in _docker_py_values(v, key)]
    if isinstance(value, tuple):
        ip, port = (value + (None,))[:2] if len(value) < 2 else value[:2]
        ip = _host_ip(str(ip), key) if ip else ""
        return [{"HostIp": ip, "HostPort": str(_port(str(port), key)) if port else ""}]
    if isinstance(value, Mapping):
        return [{"HostIp": str(value.get("HostIp", "")), "HostPort": str(
            value.get("HostPort", ""))}]
    return [{"HostIp": "", "HostPort": str(_port(str(value), key))}]


def exposed(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``--expose 80``, ``--expose 7000-7002/udp`` -> ExposedPorts."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        body, proto = split_proto(str(item), str(item))
        lo, hi = port_range(body, str(item))
        for p in range(lo, hi + 1):
            out[f"{p}/{proto}"] = {}
    return out


def format_ports(ports: Mapping[str, Any] | None) -> str:
    """The ``ps`` PORTS column: 0.0.0.0:8080->80/tcp, 53/udp (exposed only)."""
    parts = []
    for key in sorted(ports or {}, key=_sort_key):
        bindings = (ports or {}).get(key)
        if not bindings:
            parts.append(key)
            continue
        for b in bindings:
            parts.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key}")
    return ", ".join(parts)


def _sort_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto)
