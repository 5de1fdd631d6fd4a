"""A minimal rtnetlink client: just the link, address and route calls a start needs.

Why not pyroute2 here: importing it costs 300-450 ms (measured, pyroute2 0.9.7), while
the whole network part of a container start has a 15 ms budget.  These few messages
(veth pair with its peer created straight inside the container's namespace, bridge,
addresses, routes) are plain structs over an AF_NETLINK socket; pyroute2 stays the tool
for the rarely used extras (tc).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sdk.errors import RuntimeFailure

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE = 24
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_REQUEST, F_MULTI, F_ACK, F_DUMP = 0x1, 0x2, 0x4, 0x300
F_EXCL, F_CREATE, F_REPLACE = 0x200, 0x400, 0x100
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_PID, IFLA_IFALIAS = 18, 19, 20
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
CLONE_NEWNET = 0x40000000


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((4 - length % 4) % 4)


def _name(value: str) -> bytes:
    return value.encode() + b"\0"


def _mac(value: str) -> bytes:
    return bytes(int(x, 16) for x in value.split(":"))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4:
            break
        yield kind & 0x7FFF, data[pos + 4:pos + length]
        pos += (length + 3) & ~3


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    kind: str
    master: int
    alias: str
    up: bool


class Netlink:
    """One NETLINK_ROUTE socket; ``Netlink.inside(pid)`` opens one in a process's netns."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                          socket.NETLINK_ROUTE | 0)
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def inside(cls, pid: int) -> Netlink:
        """A socket in ``pid``'s network namespace (sockets keep the netns of birth)."""
        from sdk.runtime import linux

        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(target, CLONE_NEWNET)
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            finally:
                linux.setns(own, CLONE_NEWNET)
        finally:
            os.close(own)
            os.close(target)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport ------------------------------------------------------------------
    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        msg = struct.pack("=LHHLL", 16 + len(body), kind, flags | F_REQUEST, self.seq, 0) + body
        self.sock.send(msg)
        return self.seq

    def request(self, kind: int, flags: int, body: bytes, what: str) -> None:
        """Send one request with ACK; raise RuntimeFailure naming ``what`` on error."""
        seq = self._send(kind, flags | F_ACK, body)
        for _kind, _payload in self._replies(seq, what):
            pass

    def dump(self, kind: int, body: bytes) -> list[bytes]:
        seq = self._send(kind, F_DUMP, body)
        return [payload for _k, payload in self._replies(seq, "dump")]

    def _replies(self, seq: int, what: str) -> Iterator[tuple[int, bytes]]:
        while True:
            data = self.sock.recv(1 << 20)
            pos = 0
            while pos + 16 <= len(data):
                length, kind, flags, mseq, _pid = struct.unpack_from("=LHHLL", data, pos)
                payload = data[pos + 16:pos + length]
                pos += (length + 3) & ~3
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise RuntimeFailure(f"{what}: {os.strerror(code)}") from \
                            OSError(code, os.strerror(code))
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, payload
                if not flags & F_MULTI:
                    return

    # ---- links ----------------------------------------------------------------------
    def links(self) -> list[Link]:
        out = []
        for payload in self.dump(RTM_GETLINK, _ifinfo()):
            out.append(_parse_link(payload))
        return out

    def link(self, name: str) -> Link | None:
        seq = self._send(RTM_GETLINK, F_ACK, _ifinfo() + _attr(IFLA_IFNAME, _name(name)))
        try:
            for _kind, payload in self._replies(seq, f"link {name}"):
                return _parse_link(payload)
        except RuntimeFailure as exc:
            if isinstance(exc.__cause__, OSError) and exc.__cause__.errno == 19:  # ENODEV
                return None
            raise
        return None

    def add_bridge(self, name: str, mac: str, mtu: int, alias: str) -> None:
        info = _attr(IFLA_INFO_KIND, b"bridge")
        body = (_ifinfo(flags=IFF_UP, change=IFF_UP) + _attr(IFLA_IFNAME, _name(name))
                + _attr(IFLA_ADDRESS, _mac(mac)) + _attr(IFLA_MTU, struct.pack("=I", mtu))
                + _attr(IFLA_LINKINFO, info))
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL, body, f"creating bridge {name}")
        if alias:         # ignored at creation by the kernel: set it on the new link
            link = self.link(name)
            assert link is not None
            self.set_alias(link.index, alias)

    def add_veth(self, host: str, peer: str, peer_pid: int, master: int, mtu: int,
                 peer_mac: str) -> None:
        """A veth pair: ``host`` up on bridge ``master``; ``peer`` in ``peer_pid``'s netns."""
        # the peer cannot be set up here: veth_open fails (ENOTCONN) until both ends exist
        peer_msg = (_ifinfo() + _attr(IFLA_IFNAME, _name(peer))
                    + _attr(IFLA_NET_NS_PID, struct.pack("=I", peer_pid))
                    + _attr(IFLA_ADDRESS, _mac(peer_mac))
                    + _attr(IFLA_MTU, struct.pack("=I", mtu)))
        info = _attr(IFLA_INFO_KIND, b"veth") + _attr(
            IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        body = (_ifinfo(flags=IFF_UP, change=IFF_UP) + _attr(IFLA_IFNAME, _name(host))
                + _attr(IFLA_MTU, struct.pack("=I", mtu))
                + _attr(IFLA_MASTER, struct.pack("=I", master))
                + _attr(IFLA_LINKINFO, info))
        self.request(RTM_NEWLINK, F_CREATE | F_EXCL, body, f"creating veth {host}")

    def delete_link(self, name: str) -> bool:
        """Delete ``name``; False when it does not exist."""
        try:
            self.request(RTM_DELLINK, 0, _ifinfo() + _attr(IFLA_IFNAME, _name(name)),
                         f"deleting {name}")
        except RuntimeFailure as exc:
            if isinstance(exc.__cause__, OSError) and exc.__cause__.errno == 19:
                return False
            raise
        return True

    # ---- addresses and routes -------------------------------------------------------
    def set_alias(self, index: int, alias: str) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index) + _attr(IFLA_IFALIAS, alias.encode()),
                     "setting link alias")

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP), "setting link up")

    def add_address(self, index: int, iface: ipaddress.IPv4Interface) -> None:
        ip = iface.ip.packed
        body = struct.pack("=BBBBI", socket.AF_INET, iface.network.prefixlen, 0, 0, index)
        body += _attr(IFA_LOCAL, ip) + _attr(IFA_ADDRESS, ip)
        if iface.network.prefixlen < 31:
            body += _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        self.request(RTM_NEWADDR, F_CREATE | F_REPLACE, body, f"adding address {iface}")

    def addresses(self, index: int) -> list[ipaddress.IPv4Interface]:
        out = []
        for payload in self.dump(RTM_GETADDR, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0,
                                                          0)):
            _fam, plen, _fl, _sc, idx = struct.unpack_from("=BBBBI", payload)
            if idx != index:
                continue
            for kind, data in _attrs(payload[8:]):
                if kind == IFA_LOCAL:
                    out.append(ipaddress.IPv4Interface((bytes(data), plen)))
        return out

    def add_default_route(self, gateway: ipaddress.IPv4Address, index: int) -> None:
        body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0)
        body += _attr(RTA_GATEWAY, gateway.packed) + _attr(RTA_OIF, struct.pack("=I", index))
        self.request(RTM_NEWROUTE, F_CREATE | F_EXCL, body, f"adding default route via "
                     f"{gateway}")


def _parse_link(payload: bytes) -> Link:
    _fam, _type, index, flags, _change = struct.unpack_from("=BxHiII", payload)
    name = kind = alias = ""
    master = 0
    for attr, data in _attrs(payload[16:]):
        if attr == IFLA_IFNAME:
            name = data.rstrip(b"\0").decode()
        elif attr == IFLA_MASTER:
            master = struct.unpack("=I", data[:4])[0]
        elif attr == IFLA_IFALIAS:
            alias = data.rstrip(b"\0").decode(errors="replace")
        elif attr == IFLA_LINKINFO:
            for sub, sdata in _attrs(data):
                if sub == IFLA_INFO_KIND:
                    kind = sdata.rstrip(b"\0").decode()
    return Link(index, name, kind, master, alias, bool(flags & IFF_UP))


@contextmanager
def route_socket() -> Iterator[Netlink]:
    nl = Netlink()
    try:
        yield nl
    finally:
        nl.close()


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 routes of the host's main table (network, device), default route excluded."""
    out = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest = int(fields[1], 16).to_bytes(4, "little")
                mask = int(fields[7], 16).to_bytes(4, "little")
                net = ipaddress.IPv4Network((dest, ipaddress.IPv4Address(mask).compressed),
                                            strict=False)
                if net.prefixlen:
                    out.append((net, fields[0]))
    except (OSError, StopIteration):
        pass
    return out
