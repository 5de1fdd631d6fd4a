"""Address management: subnet pools, overlap checks and address choice (pure functions).

The database side (leases under BEGIN IMMEDIATE) is in service.py; everything here is
deterministic so it can be tested without a kernel.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from sdk.errors import Conflict, InvalidArgument

# Docker's ipamutils defaults: 172.17-19/16, 172.20-31 (/14s cut into /16s), 192.168/20s
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    ("172.17.0.0/16", 16), ("172.18.0.0/16", 16), ("172.19.0.0/16", 16),
    ("172.20.0.0/14", 16), ("172.24.0.0/14", 16), ("172.28.0.0/14", 16),
    ("192.168.0.0/16", 20),
)


def parse_subnet(text: str, what: str = "subnet") -> IPv4Network:
    if "/" not in str(text):
        raise InvalidArgument(f"invalid {what} {text!r}: expected a CIDR like 172.30.0.0/16")
    try:
        net = IPv4Network(str(text), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected an IPv4 CIDR like "
                              "172.30.0.0/16") from None
    if str(net) != str(text).strip():
        # an address inside the subnet (host bits set) is usually a typo, as docker says
        raise InvalidArgument(f"invalid {what} {text!r}: it should be {net}")
    return net


def parse_address(text: str, what: str = "address") -> IPv4Address:
    try:
        return IPv4Address(str(text))
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected an IPv4 address") from None


def pools_from(config_pools: Sequence[dict[str, Any]] | None) -> list[IPv4Network]:
    """Candidate subnets, in order, from daemon.json ``default-address-pools`` or Docker's."""
    pools = [(p["base"], int(p["size"])) for p in config_pools or []] or list(DEFAULT_POOLS)
    out: list[IPv4Network] = []
    for base, size in pools:
        net = IPv4Network(base, strict=False)
        if size < net.prefixlen:
            size = net.prefixlen
        out.extend(net.subnets(new_prefix=size))
    return out


def overlapping(subnet: IPv4Network, taken: Iterable[tuple[IPv4Network, str]]
                ) -> tuple[IPv4Network, str] | None:
    for net, owner in taken:
        if subnet.overlaps(net):
            return net, owner
    return None


def choose_subnet(pools: Iterable[IPv4Network], taken: Sequence[tuple[IPv4Network, str]]
                  ) -> IPv4Network:
    for candidate in pools:
        if overlapping(candidate, taken) is None:
            return candidate
    raise Conflict("all predefined address pools have been fully subnetted: remove unused "
                   "networks or set default-address-pools in daemon.json")


def check_free(subnet: IPv4Network, taken: Sequence[tuple[IPv4Network, str]]) -> None:
    hit = overlapping(subnet, taken)
    if hit is not None:
        raise Conflict(f"subnet {subnet} overlaps {hit[1]} ({hit[0]})")


def host_range(subnet: IPv4Network, ip_range: IPv4Network | None) -> tuple[int, int]:
    """First and last assignable address (as ints) of ``ip_range`` within ``subnet``."""
    pool = ip_range or subnet
    first, last = int(pool.network_address), int(pool.broadcast_address)
    if subnet.prefixlen < 31:
        first = max(first, int(subnet.network_address) + 1)
        last = min(last, int(subnet.broadcast_address) - 1)
    return first, last


def next_address(subnet: IPv4Network, ip_range: IPv4Network | None, reserved: set[int],
                 last: int) -> IPv4Address:
    """The first free address after ``last`` (wrapping), like Docker's serial allocator:
    an address just released is not handed out again at once, so a late packet or ARP
    entry for the old container never reaches the new one."""
    first, end = host_range(subnet, ip_range)
    size = end - first + 1
    if size <= 0:
        raise Conflict(f"no addresses in {ip_range or subnet}")
    start = last + 1 if first <= last < end else first
    for step in range(size):
        cand = first + (start - first + step) % size
        if cand not in reserved:
            return IPv4Address(cand)
    raise Conflict(f"no available IPv4 addresses on network {subnet}: all "
                   f"{size} addresses are in use")


def mac_for(ip: IPv4Address) -> str:
    """Docker's MAC for a container address: 02:42 + the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def gateway_for(subnet: IPv4Network, gateway: str | None) -> IPv4Address:
    if subnet.prefixlen >= 31:
        raise InvalidArgument(f"subnet {subnet} is too small for a bridge network")
    if gateway:
        gw = parse_address(gateway, "gateway")
        if gw not in subnet:
            raise InvalidArgument(f"gateway {gw} is not in subnet {subnet}")
        if gw in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"gateway {gw} is the network or broadcast address of "
                                  f"subnet {subnet}")
        return gw
    return subnet.network_address + 1


__all__ = ["DEFAULT_POOLS", "parse_subnet", "parse_address", "pools_from", "choose_subnet",
           "check_free", "next_address", "mac_for", "gateway_for", "host_range",
           "ipaddress"]
