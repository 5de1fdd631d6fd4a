"""TLS for ``berth daemon``'s TCP hosts: dockerd's flags and daemon.json keys.

berth serves TCP only with TLS (dockerd merely warns about a plain TCP host; the Engine
API is root on this machine, so berth refuses one):

- ``tlscert`` + ``tlskey`` are required for any ``tcp://`` host;
- ``tlsverify`` (+ ``tlscacert``): mutual TLS, clients must present a certificate
  signed by that CA, anyone else is refused during the handshake;
- without ``tlsverify``: server TLS only (encrypted, dockerd's ``--tls``) — any client
  that reaches the port drives the engine, so the daemon warns about it.

Flags win over daemon.json, key by key, as with dockerd's merged configuration.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from sdk.errors import InvalidArgument

DEFAULT_TLS_PORT = 2376


@dataclass(frozen=True)
class TlsSource:
    """A TLS setting and where it came from (``--tlscert`` or ``"tlscert" in FILE``)."""

    value: str
    where: str


@dataclass(frozen=True)
class TlsOptions:
    tls: bool | None = None          # None: not said either way
    verify: bool = False
    cacert: TlsSource | None = None
    cert: TlsSource | None = None
    key: TlsSource | None = None

    @classmethod
    def merge(cls, flags: dict[str, object], config: object) -> TlsOptions:
        """``--tls*`` flags over the config's ``tls*`` keys (a :class:`DaemonConfig`)."""
        source = getattr(config, "source", "") or "daemon.json"

        def pick(flag: str, key: str) -> TlsSource | None:
            value = flags.get(flag)
            if value:
                return TlsSource(str(value), f"--{key}")
            value = getattr(config, key, "")
            if value:
                return TlsSource(str(value), f'"{key}" in {source}')
            return None

        tls = flags.get("tls")
        if tls is None and getattr(config, "is_set", lambda _k: False)("tls"):
            tls = bool(getattr(config, "tls", False))
        verify = bool(flags.get("tlsverify")) or bool(getattr(config, "tlsverify", False))
        return cls(tls=None if tls is None else bool(tls), verify=verify,
                   cacert=pick("tlscacert", "tlscacert"), cert=pick("tlscert", "tlscert"),
                   key=pick("tlskey", "tlskey"))


def parse_tcp_host(host: str) -> tuple[str, int]:
    """``tcp://HOST[:PORT]`` -> (host, port); an empty host is 127.0.0.1 and an
    omitted port 2376 (dockerd's TLS port)."""
    rest = host.partition("://")[2].rstrip("/")
    if "/" in rest:
        raise InvalidArgument(f"invalid host {host!r}: a tcp host has no path "
                              "(tcp://HOST:PORT)")
    if rest.startswith("["):
        addr, _, tail = rest[1:].partition("]")
        if tail and not tail.startswith(":"):
            raise InvalidArgument(f"invalid host {host!r}: expected tcp://[IPv6]:PORT")
        port_text = tail[1:]
    else:
        addr, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not port_text:
        port = DEFAULT_TLS_PORT
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise InvalidArgument(f"invalid host {host!r}: the port must be a number between "
                              "1 and 65535")
    return addr or "127.0.0.1", port


def server_context(host: str, opts: TlsOptions) -> ssl.SSLContext:
    """The SSL context for the tcp ``host``; InvalidArgument names what is missing or
    which file is wrong, before anything listens."""
    if opts.tls is False and not opts.verify:
        raise InvalidArgument(f"refusing to listen on {host} without TLS (tls is false): "
                              "berth serves TCP only with TLS")
    if opts.cert is None or opts.key is None:
        missing = " and ".join(n for n, v in (("--tlscert", opts.cert),
                                               ("--tlskey", opts.key)) if v is None)
        raise InvalidArgument(f"refusing to listen on {host} without TLS: give {missing} "
                              "(or \"tlscert\"/\"tlskey\" in daemon.json); add --tlsverify "
                              "--tlscacert to require client certificates")
    if opts.verify and opts.cacert is None:
        raise InvalidArgument("--tlsverify needs a CA to check client certificates against: "
                              "give --tlscacert (or \"tlscacert\" in daemon.json)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2    # dockerd's minimum too
    for src in (opts.cert, opts.key) + ((opts.cacert,) if opts.cacert else ()):
        _readable(src)
    try:
        ctx.load_cert_chain(opts.cert.value, opts.key.value)
    except ssl.SSLError as exc:
        raise InvalidArgument(f"{opts.cert.where} ({opts.cert.value}) and {opts.key.where} "
                              f"({opts.key.value}) are not a PEM certificate and its private "
                              f"key: {exc.reason or exc}") from None
    if opts.verify:
        assert opts.cacert is not None
        try:
            ctx.load_verify_locations(cafile=opts.cacert.value)
        except ssl.SSLError as exc:
            raise InvalidArgument(f"{opts.cacert.where} ({opts.cacert.value}) holds no PEM "
                                  f"CA certificate: {exc.reason or exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _readable(src: TlsSource) -> None:
    try:
        with open(src.value, "rb") as f:
            head = f.read(1)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {src.where} {src.value}: "
                              f"{exc.strerror or exc}") from None
    if not head:
        raise InvalidArgument(f"{src.where} {src.value} is empty")
