"""/etc/berth/daemon.json with Docker's key names, defined once in ``OPTIONS``.

Later features (networking, registries, the service, the Ansible daemon_config module)
extend the same table; validation, defaults and documentation all come from it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError, FailedPrecondition

Validator = Callable[[Any], str | None]   # returns an error text, or None when valid


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _pos_int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v > 0 else \
        "must be a positive integer"


def _int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) else "must be an integer"


def _str_list(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else \
        "must be a list of strings"


def _str_map(v: Any) -> str | None:
    return None if isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) else \
        "must be an object of strings"


def _abs_path(v: Any) -> str | None:
    return None if isinstance(v, str) and v.startswith("/") else "must be an absolute path"


def _one_of(*choices: str) -> Validator:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"
    return check


def _size(v: Any) -> str | None:
    from sdk._internal.units import parse_size_decimal

    try:
        parse_size_decimal(str(v))
    except Exception:   # noqa: BLE001 - any parse failure is the same message
        return "must be a size like 64m"
    return None


def _log_opts(v: Any) -> str | None:
    if err := _str_map(v):
        return err
    allowed = {"max-size", "max-file", "compress", "labels", "env", "tag", "mode",
               "labels-regex", "env-regex"}
    for key, value in v.items():
        if key not in allowed:
            return f"has unknown log option {key!r}"
        if key == "max-size" and _size(value):
            return f"max-size {value!r} is not a size like 10m"
        if key == "max-file" and not (value.isdigit() and int(value) >= 1):
            return f"max-file {value!r} must be an integer >= 1"
        if key == "compress" and value not in ("true", "false"):
            return "compress must be \"true\" or \"false\""
    return None


def _ulimits(v: Any) -> str | None:
    from sdk._internal.units import ULIMITS

    if not isinstance(v, dict):
        return "must be an object like {\"nofile\": {\"Name\": \"nofile\", \"Soft\": 1024, " \
               "\"Hard\": 2048}}"
    for name, spec in v.items():
        if name not in ULIMITS or not isinstance(spec, dict) or \
                not isinstance(spec.get("Soft"), int) or not isinstance(spec.get("Hard"), int):
            return f"entry {name!r} must be {{\"Name\": ..., \"Soft\": int, \"Hard\": int}}"
    return None


def _registries(v: Any) -> str | None:
    if err := _str_list(v):
        return err
    for entry in v:
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                return f"entry {entry!r} is neither host[:port] nor a CIDR"
        elif not entry or " " in entry or "://" in entry:
            return f"entry {entry!r} must be host[:port] (no scheme)"
    return None


def _urls(v: Any) -> str | None:
    if err := _str_list(v):
        return err
    for entry in v:
        if not entry.startswith(("http://", "https://")):
            return f"entry {entry!r} must be an http(s) URL"
    return None


def _cidr_host(v: Any) -> str | None:
    try:
        ipaddress.ip_interface(v)
    except (ValueError, TypeError):
        return "must be an address with prefix like 172.30.0.1/16"
    return None


def _hosts(v: Any) -> str | None:
    if err := _str_list(v):
        return err
    for entry in v:
        if not entry.startswith(("unix://", "tcp://", "fd://")):
            return f"entry {entry!r} must be unix:///path or tcp://host:port"
    return None


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    validator: Validator
    default: Any
    description: str

    @property
    def attr(self) -> str:
        return self.key.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("data-root", _abs_path, "", "Root directory of persistent engine state"),
    Option("storage-driver", _one_of("overlay", "overlay2", "vfs"), "",
           "Storage driver: overlay (overlay2 is an alias) or vfs"),
    Option("storage-opts", _str_list, [], "Storage driver options"),
    Option("log-driver", _one_of("json-file", "local", "none"), "json-file",
           "Default log driver (local is served by json-file)"),
    Option("log-opts", _log_opts, {}, "Default log driver options"),
    Option("log-level", _one_of("debug", "info", "warn", "error", "fatal"), "info",
           "Logging level"),
    Option("debug", _bool, False, "Debug output"),
    Option("default-ulimits", _ulimits, {}, "Default ulimits for containers"),
    Option("selinux-enabled", _bool, False, "Label containers with SELinux contexts"),
    Option("no-new-privileges", _bool, False, "Set no-new-privileges for new containers"),
    Option("insecure-registries", _registries, [], "Registries reached without TLS checks"),
    Option("registry-mirrors", _urls, [], "Mirrors tried first for docker.io"),
    Option("max-concurrent-downloads", _pos_int, 3, "Parallel layer downloads per pull"),
    Option("max-concurrent-uploads", _pos_int, 5, "Parallel layer uploads per push"),
    Option("max-download-attempts", _pos_int, 5, "Attempts per layer download"),
    Option("bip", _cidr_host, "", "Address and prefix of the default bridge"),
    Option("fixed-cidr", _str, "", "IPv4 range for the default bridge's containers"),
    Option("default-address-pools", lambda v: None if isinstance(v, list) else
           "must be a list of {\"base\": CIDR, \"size\": int}", [],
           "Pools user networks are allocated from"),
    Option("iptables", _bool, True, "Manage firewall rules"),
    Option("ip-forward", _bool, True, "Enable net.ipv4.ip_forward"),
    Option("ip-masq", _bool, True, "Masquerade container traffic"),
    Option("userland-proxy", _bool, True, "Serve published ports on loopback"),
    Option("icc", _bool, True, "Inter-container communication on the default bridge"),
    Option("mtu", _pos_int, 1500, "MTU of container interfaces"),
    Option("dns", _str_list, [], "DNS servers for containers"),
    Option("dns-search", _str_list, [], "DNS search domains for containers"),
    Option("dns-opts", _str_list, [], "DNS options for containers"),
    Option("hosts", _hosts, [], "Sockets the engine service listens on"),
    Option("group", _str, "berth", "Group owning the service socket"),
    Option("live-restore", _bool, False, "Keep containers running when the service stops"),
    Option("shutdown-timeout", _int, 15, "Seconds to wait for containers at shutdown"),
    Option("exec-opts", _str_list, [], "Runtime options such as native.cgroupdriver"),
    Option("cgroup-parent", _str, "", "Parent cgroup of containers"),
    Option("default-runtime", _str, "berth", "Default runtime"),
    Option("default-shm-size", _size, "64M", "Default /dev/shm size"),
    Option("labels", _str_list, [], "Engine labels"),
    Option("features", lambda v: None if isinstance(v, dict) else "must be an object", {},
           "Feature flags"),
    Option("experimental", _bool, False, "Experimental features"),
)
BY_KEY = {o.key: o for o in OPTIONS}


@dataclass(frozen=True)
class DaemonConfig:
    values: dict[str, Any] = field(default_factory=dict)   # only keys present in the file
    source: str = ""

    def __getattr__(self, attr: str) -> Any:
        key = attr.replace("_", "-")
        if key in BY_KEY:
            return self.values.get(key, BY_KEY[key].default)
        raise AttributeError(attr)


def validate_config_dict(data: Any, source: str, *,
                         selinux_available: Callable[[], bool] | None = None) -> DaemonConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must contain a JSON object")
    for key, value in data.items():
        option = BY_KEY.get(key)
        if option is None:
            raise ConfigError(f'unknown key "{key}" in {source}')
        error = option.validator(value)
        if error:
            raise ConfigError(f'"{key}" in {source} {error}, got {json.dumps(value)}')
    if data.get("selinux-enabled"):
        from sdk._internal.selinux import selinux_enabled

        if not (selinux_available or selinux_enabled)():
            raise FailedPrecondition(
                f"selinux-enabled is true in {source} but SELinux is not enabled on this "
                "host (no /sys/fs/selinux): set it to false or enable SELinux")
    return DaemonConfig(dict(data), source)


def load_config(path: Path | None, *,
                selinux_available: Callable[[], bool] | None = None) -> DaemonConfig:
    if path is None or not Path(path).exists():
        return DaemonConfig({}, str(path or ""))
    text = Path(path).read_text()
    if not text.strip():
        return DaemonConfig({}, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None
    return validate_config_dict(data, str(path), selinux_available=selinux_available)


def config_to_dict(cfg: DaemonConfig, only_set: bool = True) -> dict[str, Any]:
    if only_set:
        return dict(cfg.values)
    return {o.key: cfg.values.get(o.key, o.default) for o in OPTIONS}


__all__ = ["OPTIONS", "Option", "DaemonConfig", "load_config", "validate_config_dict",
           "config_to_dict", "fields"]
