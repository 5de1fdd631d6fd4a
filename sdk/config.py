"""/etc/berth/daemon.json: Docker's key names, typed, defined once.

Each setting is one field of :class:`DaemonConfig`, declared with :func:`_option`: its
daemon.json key, default, validator and a one-line description.  :data:`OPTIONS` is
derived from those fields, so validation, defaults, ``config_to_dict``, the docs and the
Ansible ``daemon_config`` module all read the same table.  To add a setting, add a field.

Values keep their JSON shape, except that lists become tuples (the config is frozen).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sdk.errors import ConfigError, FailedPrecondition, InvalidArgument

DEFAULT_PATH = Path("/etc/berth/daemon.json")

Validator = Callable[[Any], str | None]
"""Returns None when the value is fine, else the end of a sentence that starts with
``"<key>" in <file>`` (e.g. ``must be true or false, got "yes"``)."""


def _js(value: Any) -> str:
    return json.dumps(value)


def _got(value: Any) -> str:
    return f"got {_js(value)}"


# --------------------------------------------------------------------------- validators


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, {_got(v)}"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else f"must be a string, {_got(v)}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(v: Any) -> str | None:
    return None if _is_int(v) and v > 0 else f"must be a positive integer, {_got(v)}"


def _nonneg_int(v: Any) -> str | None:
    return None if _is_int(v) and v >= 0 else f"must be an integer >= 0, {_got(v)}"


def _str_list(v: Any) -> str | None:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return None
    return f"must be a list of strings, {_got(v)}"


def _each(check: Callable[[str], str | None]) -> Validator:
    """A list of strings whose every entry passes ``check`` (which explains a bad one)."""
    def validate(v: Any) -> str | None:
        if err := _str_list(v):
            return err
        for entry in v:
            if why := check(entry):
                return f"has an invalid entry {json.dumps(entry)}: {why}"
        return None
    return validate


def _choice(*choices: str, notes: Mapping[str, str] | None = None) -> Validator:
    notes = notes or {}
    shown = ", ".join(f'"{c}"' + (f" ({notes[c]})" if c in notes else "") for c in choices)

    def validate(v: Any) -> str | None:
        return None if v in choices else f"must be one of {shown}, {_got(v)}"
    return validate


def _abs_path(v: Any) -> str | None:
    if isinstance(v, str) and v.startswith("/"):
        return None
    return f"must be an absolute path, {_got(v)}"


_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")


def parse_ram_size(value: str | int) -> int:
    """go-units ``RAMInBytes`` (binary: 64m = 64 MiB), as docker's size options use."""
    if _is_int(value):
        return int(value)
    m = _SIZE_RE.match(str(value).strip())
    if m is None:
        raise ValueError(f"invalid size: {value!r}")
    power = " kmgtp".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * 1024 ** power)


def _size(v: Any) -> str | None:
    if isinstance(v, str | int) and not isinstance(v, bool):
        try:
            if parse_ram_size(v) > 0:
                return None
        except ValueError:
            pass
    return f'must be a size like "64m" (a number of bytes with an optional k, m or g ' \
           f"suffix), {_got(v)}"


def _str_map(v: Any) -> str | None:
    if isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
        return None
    return f"must be an object whose values are strings, {_got(v)}"


def _log_opts(v: Any) -> str | None:
    # json-file specifics are checked once the log driver is known (_cross_checks)
    return _str_map(v)


_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def _ulimits(v: Any) -> str | None:
    example = '{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}'
    if not isinstance(v, dict):
        return f"must be an object like {example}, {_got(v)}"
    for name, spec in v.items():
        if name not in _ULIMITS:
            return f'has an unknown ulimit "{name}" (known: {", ".join(_ULIMITS)})'
        if not isinstance(spec, dict) or not _is_int(spec.get("Soft")) or \
                not _is_int(spec.get("Hard")) or set(spec) - {"Name", "Soft", "Hard"}:
            return (f'has an invalid entry "{name}": it must look like {{"Name": "{name}", '
                    f'"Soft": 1024, "Hard": 2048}}, {_got(spec)}')
        if spec.get("Name", name) != name:
            return f'has "Name": {json.dumps(spec["Name"])} under "{name}": they must match'
        soft, hard = spec["Soft"], spec["Hard"]
        if hard != -1 and (soft == -1 or soft > hard):
            return (f'has a soft limit ({soft}) greater than the hard limit ({hard}) for '
                    f'"{name}" (-1 means unlimited)')
    return None


_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")


def _host_port(entry: str, *, port_required: bool = False) -> str | None:
    """None when ``entry`` is host[:port] (host a name, IPv4 or [IPv6])."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d*))?|([^:/\[\]]+)(?::(\d*))?", entry)
    if m is None:
        return "use host[:port], like myregistry.local:5000 or 10.1.2.3:5000"
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if m.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} is not an IPv6 address"
    elif not _HOSTNAME.match(host):
        return f"{host!r} is not a valid host name or IP address"
    if port is None:
        return "a port is required, like host:2376" if port_required else None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return "the port must be a number between 1 and 65535"
    return None


def _registry(entry: str) -> str | None:
    if "://" in entry:
        return "insecure registries are host[:port] or a CIDR, without a scheme"
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return "it is neither host[:port] nor a CIDR like 10.0.0.0/8"
        return None
    return _host_port(entry)


def _mirror(entry: str) -> str | None:
    try:
        url = urlsplit(entry)
        url.port    # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "it is not a valid URL"
    if url.scheme not in ("http", "https"):
        return "mirrors are http:// or https:// URLs, like https://mirror.example.com"
    if not url.hostname:
        return "the URL has no host"
    if url.username or url.password:
        return "username/password are not allowed in a mirror URL"
    if url.query or url.fragment:
        return "query or fragment are not allowed at the end of a mirror URL"
    return None


def _bip(v: Any) -> str | None:
    example = 'like "172.30.0.1/16"'
    if not isinstance(v, str) or "/" not in v:
        return f"must be an IPv4 address with a prefix length, {example}, {_got(v)}"
    try:
        iface = ipaddress.IPv4Interface(v)
    except ValueError:
        return f"must be an IPv4 address with a prefix length, {example}, {_got(v)}"
    net = iface.network
    if net.prefixlen < 31 and iface.ip in (net.network_address, net.broadcast_address):
        which = "network" if iface.ip == net.network_address else "broadcast"
        return (f"must be the bridge's host address with a prefix length, {example}, "
                f"{_got(v)} (that is the {which} address)")
    return None


def _cidr4(v: Any) -> str | None:
    try:
        ipaddress.IPv4Network(v, strict=False)
        if "/" in v:
            return None
    except (ValueError, TypeError):
        pass
    return f'must be an IPv4 CIDR like "172.30.1.0/24", {_got(v)}'


def _address_pools(v: Any) -> str | None:
    example = '[{"base": "172.80.0.0/16", "size": 24}]'
    if not isinstance(v, list):
        return f"must be a list like {example}, {_got(v)}"
    for pool in v:
        if not isinstance(pool, dict) or set(pool) != {"base", "size"} or \
                not isinstance(pool["base"], str) or not _is_int(pool["size"]):
            return f"has an invalid pool {_js(pool)}: each is like {example[1:-1]}"
        try:
            base = ipaddress.ip_network(pool["base"], strict=False)
        except ValueError:
            return f'has an invalid pool base "{pool["base"]}": it must be a CIDR'
        if not base.prefixlen <= pool["size"] <= base.max_prefixlen:
            return (f'has pool "{pool["base"]}" with size {pool["size"]}: the size must be '
                    f"between {base.prefixlen} and {base.max_prefixlen}")
    return None


def _ip(entry: str) -> str | None:
    try:
        ipaddress.ip_address(entry)
    except ValueError:
        return "DNS servers are IP addresses, like 1.1.1.1"
    return None


_DOMAIN = re.compile(r"(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])\.)*"
                     r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])\.?\Z")


def _domain(entry: str) -> str | None:
    if entry == "." or (len(entry) <= 255 and _DOMAIN.match(entry)):
        return None
    return "it is not a valid domain name"


def _daemon_host(entry: str) -> str | None:
    scheme, sep, rest = entry.partition("://")
    if sep and scheme == "unix" and (rest == "" or rest.startswith("/")):
        return None
    if sep and scheme == "fd":
        return None
    if sep and scheme == "tcp" and rest:
        return _host_port(rest.rstrip("/"))
    return "use unix:///path/to/socket or tcp://host:port"


def _key_value(entry: str) -> str | None:
    key, sep, _ = entry.partition("=")
    return None if sep and key else "it must be key=value"


def _exec_opt(entry: str) -> str | None:
    key, sep, value = entry.partition("=")
    if not sep:
        return f"invalid exec-opt ({entry}): must be formatted 'opt=value'"
    if key == "native.cgroupdriver":
        return None if value in ("cgroupfs", "systemd") else \
            "native.cgroupdriver must be cgroupfs or systemd"
    if key == "native.umask":
        return None if value in ("normal", "masked") else \
            "native.umask must be normal or masked"
    return f"unknown exec-opt {key!r} (known: native.cgroupdriver, native.umask)"


def _bool_map(v: Any) -> str | None:
    if isinstance(v, dict) and all(isinstance(x, bool) for x in v.values()):
        return None
    return f'must be an object of true/false flags, like {{"buildkit": false}}, {_got(v)}'


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Option:
    """One daemon.json setting (docs and the Ansible module are generated from these)."""

    key: str                 # daemon.json key, docker's spelling
    attr: str                # DaemonConfig attribute
    kind: str                # JSON type: string, bool, int, list, object, size
    default: Any             # JSON form
    validator: Validator
    description: str
    reloadable: bool         # docker applies it on SIGHUP without a restart


def _option(key: str, default: Any, validator: Validator, description: str, *,
            kind: str = "", reloadable: bool = False) -> Any:
    meta = {"key": key, "validator": validator, "description": description,
            "kind": kind or _kind(default), "reloadable": reloadable, "json_default": default}
    if isinstance(default, list):
        return field(default_factory=lambda: _to_value(default), metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=lambda: _clone(default), metadata=meta)
    return field(default=default, metadata=meta)


def _kind(default: Any) -> str:
    for typ, name in ((bool, "bool"), (int, "int"), (str, "string"), (list, "list"),
                      (dict, "object")):
        if isinstance(default, typ):
            return name
    raise TypeError(f"no JSON kind for default {default!r}")


def _clone(v: Any) -> Any:
    """A deep copy of a JSON value (cheaper to import than ``copy``)."""
    if isinstance(v, dict):
        return {k: _clone(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clone(x) for x in v]
    return v


def _to_value(v: Any) -> Any:
    """JSON value -> field value: lists become tuples, containers are copied."""
    return tuple(_clone(x) for x in v) if isinstance(v, list) else _clone(v)


def _to_json(v: Any) -> Any:
    return _clone(v)


@dataclass(frozen=True)
class DaemonConfig:
    """The engine's settings from daemon.json; every option has docker's default."""

    data_root: str = _option("data-root", "/var/lib/berth", _abs_path,
                             "Root directory of persistent engine state (images, containers, "
                             "volumes)")
    storage_driver: str = _option("storage-driver", "", _choice(
        "overlay", "overlay2", "vfs", notes={"overlay2": "an alias of overlay"}),
        "Storage driver: overlay (overlay2 is an alias of it) or vfs; empty picks overlay "
        "when the kernel supports it")
    storage_opts: tuple[str, ...] = _option("storage-opts", [], _each(_key_value),
                                            "Storage driver options, key=value")
    log_driver: str = _option("log-driver", "json-file", _choice(
        "json-file", "local", "none", notes={"local": "berth writes json-file logs for it"}),
        "Default log driver: json-file or none; local is accepted as an alias of json-file")
    log_opts: dict[str, str] = _option("log-opts", {}, _log_opts,
                                       "Default log driver options: max-size, max-file, "
                                       "compress, labels, env, tag...")
    log_level: str = _option("log-level", "info", _choice(
        "trace", "debug", "info", "warn", "warning", "error", "fatal", "panic"),
        "Engine logging level")
    debug: bool = _option("debug", False, _bool, "Debug output", reloadable=True)
    default_ulimits: dict[str, dict[str, Any]] = _option(
        "default-ulimits", {}, _ulimits,
        'Default ulimits for containers, like {"nofile": {"Name": "nofile", "Soft": 1024, '
        '"Hard": 2048}}')
    selinux_enabled: bool = _option("selinux-enabled", False, _bool,
                                    "Label containers with SELinux contexts (needs SELinux on "
                                    "the host)")
    no_new_privileges: bool = _option("no-new-privileges", False, _bool,
                                      "Set no-new-privileges for new containers")
    insecure_registries: tuple[str, ...] = _option(
        "insecure-registries", [], _each(_registry),
        "Registries (host[:port] or CIDR) reached over plain HTTP or unverified TLS",
        reloadable=True)
    registry_mirrors: tuple[str, ...] = _option(
        "registry-mirrors", [], _each(_mirror),
        "Mirrors (http(s) URLs) tried before Docker Hub", reloadable=True)
    max_concurrent_downloads: int = _option("max-concurrent-downloads", 3, _pos_int,
                                            "Parallel layer downloads per pull",
                                            reloadable=True)
    max_concurrent_uploads: int = _option("max-concurrent-uploads", 5, _pos_int,
                                          "Parallel layer uploads per push", reloadable=True)
    max_download_attempts: int = _option("max-download-attempts", 5, _pos_int,
                                         "Attempts per layer download", reloadable=True)
    bip: str = _option("bip", "", _bip,
                       "Address and prefix of the default bridge, like 172.30.0.1/16")
    fixed_cidr: str = _option("fixed-cidr", "", _cidr4,
                              "IPv4 range (inside bip) for the default bridge's containers")
    default_address_pools: tuple[dict[str, Any], ...] = _option(
        "default-address-pools", [], _address_pools,
        'Pools user networks are allocated from, like [{"base": "172.80.0.0/16", '
        '"size": 24}]')
    iptables: bool = _option("iptables", True, _bool, "Manage iptables rules")
    ip_forward: bool = _option("ip-forward", True, _bool, "Enable net.ipv4.ip_forward")
    ip_masq: bool = _option("ip-masq", True, _bool, "Masquerade container traffic")
    userland_proxy: bool = _option("userland-proxy", True, _bool,
                                   "Serve published ports on loopback with a proxy process")
    icc: bool = _option("icc", True, _bool,
                        "Inter-container communication on the default bridge")
    mtu: int = _option("mtu", 1500, _pos_int, "MTU of container interfaces")
    dns: tuple[str, ...] = _option("dns", [], _each(_ip), "DNS servers for containers")
    dns_search: tuple[str, ...] = _option("dns-search", [], _each(_domain),
                                          "DNS search domains for containers")
    dns_opts: tuple[str, ...] = _option("dns-opts", [], _str_list,
                                        "resolv.conf options for containers")
    hosts: tuple[str, ...] = _option("hosts", [], _each(_daemon_host),
                                     "Sockets the engine service listens on "
                                     "(unix:///path or tcp://host:port)")
    group: str = _option("group", "berth", _str, "Group owning the service's unix socket")
    tls: bool = _option("tls", False, _bool,
                        "Serve TCP hosts with TLS (always: berth refuses plain TCP; implied "
                        "by tlsverify)")
    tlsverify: bool = _option("tlsverify", False, _bool,
                              "Require client certificates signed by tlscacert on TCP hosts "
                              "(mutual TLS)")
    tlscacert: str = _option("tlscacert", "", _abs_path,
                             "CA certificate (PEM) that client certificates must chain to")
    tlscert: str = _option("tlscert", "", _abs_path,
                           "The service's TLS certificate (PEM) for TCP hosts")
    tlskey: str = _option("tlskey", "", _abs_path,
                          "The service's TLS private key (PEM) for TCP hosts")
    live_restore: bool = _option("live-restore", False, _bool,
                                 "Keep containers running while the engine service is down",
                                 reloadable=True)
    shutdown_timeout: int = _option("shutdown-timeout", 15, _nonneg_int,
                                    "Seconds to wait for containers to stop at shutdown",
                                    reloadable=True)
    exec_opts: tuple[str, ...] = _option("exec-opts", [], _each(_exec_opt),
                                         "Runtime options, like native.cgroupdriver=cgroupfs")
    cgroup_parent: str = _option("cgroup-parent", "", _str, "Parent cgroup of containers")
    default_runtime: str = _option("default-runtime", "berth", _choice(
        "berth", "runc", notes={"runc": "served by berth's own runtime"}),
        "Default OCI runtime (berth has one; runc is accepted as its alias)", reloadable=True)
    labels: tuple[str, ...] = _option("labels", [], _each(_key_value),
                                      "Engine labels, key=value", reloadable=True)
    features: dict[str, bool] = _option("features", {}, _bool_map,
                                        "Feature flags, name: true/false", reloadable=True)
    experimental: bool = _option("experimental", False, _bool, "Enable experimental features")
    default_shm_size: str | int = _option("default-shm-size", "64M", _size,
                                          "Default /dev/shm size of containers", kind="size")

    # not options: where the values came from
    source: str = field(default="", compare=False)
    keys: frozenset[str] = field(default=frozenset(), compare=False)   # keys set in the file

    def is_set(self, key: str) -> bool:
        """The file sets ``key`` (as opposed to using the default)."""
        return key in self.keys

    def get(self, key: str) -> Any:
        """A value by its daemon.json key."""
        return getattr(self, BY_KEY[key].attr)

    @property
    def default_shm_size_bytes(self) -> int:
        return parse_ram_size(self.default_shm_size)


OPTIONS: tuple[Option, ...] = tuple(
    Option(f.metadata["key"], f.name, f.metadata["kind"], f.metadata["json_default"],
           f.metadata["validator"], f.metadata["description"], f.metadata["reloadable"])
    for f in fields(DaemonConfig) if "key" in f.metadata)
BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}


# --------------------------------------------------------------------------- loading


def validate_config_dict(data: Any, source: str, *,
                         selinux_available: Callable[[], bool] | None = None) -> DaemonConfig:
    """Check a parsed daemon.json (``source`` names it in errors) and type it.

    ConfigError for what the file gets wrong; FailedPrecondition when the file is fine
    but this host cannot do it (selinux-enabled without SELinux).  ``selinux_available``
    defaults to probing the host; pass ``lambda: True`` to validate for another host.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must contain a JSON object ({{...}}), "
                          f"{_got(data)[:80]}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        option = BY_KEY.get(key)
        if option is None:
            import difflib

            hint = difflib.get_close_matches(key, BY_KEY, n=1)
            raise ConfigError(f'unknown key "{key}" in {source}' +
                              (f' (did you mean "{hint[0]}"?)' if hint else ""))
        # docker treats an empty string as "not set" for its string options
        unset = value == "" and option.kind == "string"
        if not unset and (why := option.validator(value)):
            raise ConfigError(f'"{key}" in {source} {why}')
        values[option.attr] = _to_value(value)
    cfg = DaemonConfig(**values, source=source, keys=frozenset(data))
    _cross_checks(cfg, source)
    if cfg.selinux_enabled:
        if selinux_available is None:
            from sdk._internal.selinux import selinux_enabled as selinux_available
        if not selinux_available():
            raise FailedPrecondition(
                f"selinux-enabled is true in {source} but SELinux is not enabled on this "
                "host (no /sys/fs/selinux): set it to false, or enable SELinux and reboot")
    return cfg


def _cross_checks(cfg: DaemonConfig, source: str) -> None:
    if cfg.log_opts and cfg.log_driver != "none":     # docker ignores opts for "none"
        from sdk.tasks.logs import parse_log_opts

        try:
            parse_log_opts(cfg.log_opts)
        except InvalidArgument as exc:
            raise ConfigError(f'"log-opts" in {source} is invalid: {exc.message}') from None
    if cfg.bip and cfg.fixed_cidr:
        bridge = ipaddress.IPv4Interface(cfg.bip).network
        fixed = ipaddress.IPv4Network(cfg.fixed_cidr, strict=False)
        if not fixed.subnet_of(bridge):
            raise ConfigError(f'"fixed-cidr" {cfg.fixed_cidr} in {source} is not inside the '
                              f'"bip" network {bridge}: pick a range within it')


def load_config(path: str | Path | None = None, *,
                selinux_available: Callable[[], bool] | None = None) -> DaemonConfig:
    """Read daemon.json; a missing (or empty) file, or ``path=None``, means defaults."""
    if path is None:
        return DaemonConfig()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return DaemonConfig(source=str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")     # docker strips a BOM too
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        return DaemonConfig(source=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None
    return validate_config_dict(data, str(path), selinux_available=selinux_available)


def config_to_dict(cfg: DaemonConfig, only_set: bool = True) -> dict[str, Any]:
    """daemon.json content for ``cfg``: the keys the file set, or every option."""
    return {o.key: _to_json(getattr(cfg, o.attr)) for o in OPTIONS
            if not only_set or o.key in cfg.keys}


def _check_table() -> None:
    """Every option's default must pass its own validator (catches typos when extending)."""
    for o in OPTIONS:
        if o.default not in ("", [], {}) and (why := o.validator(o.default)):
            raise AssertionError(f"default of {o.key} is invalid: {why}")
    missing = [f.name for f in fields(DaemonConfig)
               if "key" not in f.metadata and f.name not in ("source", "keys")]
    assert not missing, f"DaemonConfig fields without _option(): {missing}"
    assert all(f.default is not MISSING or f.default_factory is not MISSING
               for f in fields(DaemonConfig))


_check_table()

__all__ = ["DEFAULT_PATH", "OPTIONS", "BY_KEY", "Option", "DaemonConfig", "load_config",
           "validate_config_dict", "config_to_dict", "parse_ram_size"]
