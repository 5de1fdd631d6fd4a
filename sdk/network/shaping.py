"""Per-container bandwidth limits (beyond Docker): ``--egress-rate`` / ``--ingress-rate``.

A token bucket (tbf) on each side of the container's first veth: egress on the
container's eth0 (inside its namespace), ingress on the host end (what leaves the host
towards the container).  Parsing is here without heavy imports; applying uses pyroute2
(imported only for containers that set a rate: it costs ~0.4 s to import).
"""

from __future__ import annotations

import os
import re

from sdk.errors import InvalidArgument

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_rate(value: object, flag: str) -> int:
    """tc-style rate -> bits per second: "10mbit", "1gbit", "500kbit", "2mbps" (bytes),
    or a plain number of bits per second."""
    if isinstance(value, int) and not isinstance(value, bool):
        bits = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|bps|b)?\s*", str(value).lower())
        if not m:
            raise InvalidArgument(f"invalid {flag} {value!r}: expected a rate like 10mbit, "
                                  "1gbit or 500kbit")
        bits = int(float(m.group(1)) * _UNITS[m.group(2)] *
                   (8 if m.group(3) in ("bps", "b") else 1))
    if bits < 8000:
        raise InvalidArgument(f"invalid {flag} {value!r}: the minimum is 8kbit")
    return bits


def _tbf(ipr: object, index: int, bits: int) -> None:
    rate = bits // 8
    burst = max(32 * 1024, rate // 100)          # >= rate/HZ, at least a few frames
    ipr.tc("add", "tbf", index, rate=rate, burst=burst, latency="50ms")  # type: ignore[attr-defined]


def apply(pid: int, host_veth: int, iface: str, egress: int, ingress: int) -> None:
    from pyroute2 import IPRoute

    from sdk.runtime import linux

    # the container's socket first: pyroute2 may reuse state of an earlier instance, and
    # the netlink socket must be born while this thread is in the container's netns
    if egress:
        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(target, 0x40000000)
            try:
                inner = IPRoute()
                index = inner.link_lookup(ifname=iface)[0]
            finally:
                linux.setns(own, 0x40000000)
        finally:
            os.close(own)
            os.close(target)
        try:
            _tbf(inner, index, egress)
        finally:
            inner.close()
    if ingress:
        with IPRoute() as ipr:
            _tbf(ipr, host_veth, ingress)
