"""Registry configuration: distribution's config.yml shape where it overlaps, plus berth keys.

Validation is strict: an unknown or mistyped key is ONE error naming the key (with its
dotted path), so a declarative deployment (the Ansible role) fails early and clearly.
Keys distribution has but berth does not implement (log, notifications, redis, ...) are
accepted and ignored so an existing config.yml still loads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError

DEFAULT_ROOT = "/var/lib/berth-registry"
DEFAULT_ADDR = ":5000"
IGNORED_TOP = frozenset({"log", "loglevel", "notifications", "redis", "health", "middleware",
                         "validation", "compatibility", "reporting"})


@dataclass
class RegistryConfig:
    root: str = DEFAULT_ROOT
    addr: str = DEFAULT_ADDR
    delete_enabled: bool = False
    readonly: bool = False
    tls_certificate: str = ""
    tls_key: str = ""
    secret: str = ""
    htpasswd_path: str = ""
    realm: str = "berth-registry"
    token_enabled: bool = False
    token_expiration: float = 300.0
    anonymous_pull: bool = False
    anonymous_push: bool = False
    access: dict[str, Any] | None = None    # auth.access (see sdk.registry.access)
    max_upload_size: int = 0            # 0: no limit
    max_manifest_size: int = 4 * 1024 * 1024
    catalog_max_entries: int = 1000
    upload_purging: bool = True
    upload_purge_age: float = 168 * 3600.0
    upload_purge_interval: float = 24 * 3600.0
    proxy_remoteurl: str = ""
    proxy_username: str = ""
    proxy_password: str = ""
    html: bool = True
    gc_grace: float = 3600.0
    gc_interval: float = 0.0            # online GC period; 0: off
    gc_delete_untagged: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.htpasswd_path)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_certificate)

    def host_port(self) -> tuple[str, int]:
        return parse_addr(self.addr)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
          "d": 86400.0}


def parse_duration(value: object, key: str) -> float:
    """Go-style durations ("168h", "1h30m", "10s") or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"registry config: {key}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"registry config: {key}: invalid duration {value!r} "
                          "(use e.g. 30s, 10m, 168h)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.I)


def parse_size(value: object, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"registry config: {key}: expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"registry config: {key}: must not be negative")
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise ConfigError(f"registry config: {key}: invalid size {value!r} (use e.g. 512m, 5g)")
    mult = 1024 ** " kmgt".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * mult)


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"registry config: http.addr: invalid address {addr!r} "
                          "(use HOST:PORT, e.g. 127.0.0.1:5000 or :5000)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class _Reader:
    """Walks the YAML mapping, recording which keys were consumed."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        self.used.add(name)
        if name not in self.data or self.data[name] is None:
            return default
        value = self.data[name]
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"registry config: {self.key(name)}: expected true or false, "
                              f"got {value!r}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            want = {"str": "a string", "dict": "a mapping", "int": "an integer"}.get(names, names)
            raise ConfigError(f"registry config: {self.key(name)}: expected {want}, "
                              f"got {value!r}")
        return value

    def sub(self, name: str) -> _Reader:
        return _Reader(self.get(name, dict, {}), self.key(name))

    def finish(self, ignored: frozenset[str] = frozenset()) -> None:
        for k in self.data:
            if k not in self.used and k not in ignored:
                raise ConfigError(f"registry config: unknown key {self.key(str(k))!r}")


def config_from_dict(data: dict[str, Any]) -> RegistryConfig:
    if not isinstance(data, dict):
        raise ConfigError("registry config: the document must be a mapping")
    cfg = RegistryConfig()
    top = _Reader(data)
    top.get("version", (str, int, float))
    storage = top.sub("storage")
    fs = storage.sub("filesystem")
    cfg.root = fs.get("rootdirectory", str, cfg.root)
    fs.get("maxthreads", int)
    fs.finish()
    delete = storage.sub("delete")
    cfg.delete_enabled = delete.get("enabled", bool, False)
    delete.finish()
    maint = storage.sub("maintenance")
    purge = maint.sub("uploadpurging")
    cfg.upload_purging = purge.get("enabled", bool, True)
    if (age := purge.get("age", (str, int, float))) is not None:
        cfg.upload_purge_age = parse_duration(age, purge.key("age"))
    if (iv := purge.get("interval", (str, int, float))) is not None:
        cfg.upload_purge_interval = parse_duration(iv, purge.key("interval"))
    purge.get("dryrun", bool)
    purge.finish()
    ro = maint.sub("readonly")
    cfg.readonly = ro.get("enabled", bool, False)
    ro.finish()
    maint.finish()
    storage.get("cache", dict)
    storage.get("redirect", dict)
    storage.get("tag", dict)
    if (size := storage.get("maxuploadsize", (str, int))) is not None:
        cfg.max_upload_size = parse_size(size, storage.key("maxuploadsize"))
    storage.finish()
    http = top.sub("http")
    cfg.addr = http.get("addr", str, cfg.addr)
    parse_addr(cfg.addr)
    cfg.secret = http.get("secret", str, "")
    tls = http.sub("tls")
    cfg.tls_certificate = tls.get("certificate", str, "")
    cfg.tls_key = tls.get("key", str, "")
    if bool(cfg.tls_certificate) != bool(cfg.tls_key):
        raise ConfigError("registry config: http.tls: certificate and key must be set together")
    tls.finish()
    for k in ("host", "prefix", "net", "relativeurls", "headers", "debug", "draintimeout",
              "http2", "h2c"):
        http.get(k, object)
    http.finish()
    auth = top.sub("auth")
    htp = auth.sub("htpasswd")
    cfg.realm = htp.get("realm", str, cfg.realm)
    cfg.htpasswd_path = htp.get("path", str, "")
    htp.finish()
    token = auth.sub("token")
    cfg.token_enabled = token.get("enabled", bool, False)
    if (exp := token.get("expiration", (str, int, float))) is not None:
        cfg.token_expiration = parse_duration(exp, token.key("expiration"))
    token.finish()
    anon = auth.sub("anonymous")
    cfg.anonymous_pull = anon.get("pull", bool, False)
    cfg.anonymous_push = anon.get("push", bool, False)
    anon.finish()
    cfg.access = auth.get("access", dict)
    auth.finish()
    if cfg.access is not None:
        from sdk.registry.access import parse_access

        parse_access(cfg.access)
        if not cfg.htpasswd_path:
            raise ConfigError("registry config: auth.access needs auth.htpasswd.path "
                              "(the users it names)")
    if not cfg.htpasswd_path and cfg.token_enabled:
        raise ConfigError("registry config: auth.token needs auth.htpasswd.path "
                          "(the users the token endpoint authenticates)")
    proxy = top.sub("proxy")
    cfg.proxy_remoteurl = proxy.get("remoteurl", str, "")
    cfg.proxy_username = proxy.get("username", str, "")
    cfg.proxy_password = proxy.get("password", str, "")
    proxy.get("ttl", (str, int))
    proxy.finish()
    catalog = top.sub("catalog")
    cfg.catalog_max_entries = catalog.get("maxentries", int, cfg.catalog_max_entries)
    if cfg.catalog_max_entries < 1:
        raise ConfigError("registry config: catalog.maxentries: must be at least 1")
    catalog.finish()
    # berth keys
    if top.get("readonly", bool, False):
        cfg.readonly = True
    if (size := top.get("maxuploadsize", (str, int))) is not None:
        cfg.max_upload_size = parse_size(size, "maxuploadsize")
    cfg.html = top.get("html", bool, True)
    gc = top.sub("gc")
    if (grace := gc.get("grace", (str, int, float))) is not None:
        cfg.gc_grace = parse_duration(grace, gc.key("grace"))
    if (iv := gc.get("interval", (str, int, float))) is not None:
        cfg.gc_interval = parse_duration(iv, gc.key("interval"))
    cfg.gc_delete_untagged = gc.get("deleteuntagged", bool, False)
    gc.finish()
    top.finish(IGNORED_TOP)
    return cfg


def load_config(path: str | os.PathLike[str] | None = None,
                overrides: dict[str, Any] | None = None) -> RegistryConfig:
    """Read a YAML config file (if any), then apply keyword overrides (CLI flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"registry config: cannot read {p}: {exc.strerror}")
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"registry config: {p} is not valid YAML: {exc}")
        data = loaded if loaded is not None else {}
        if not isinstance(data, dict):
            raise ConfigError(f"registry config: {p} must contain a mapping")
    cfg = config_from_dict(data)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if not hasattr(cfg, key):
            raise ConfigError(f"registry config: unknown setting {key!r}")
        setattr(cfg, key, value)
    parse_addr(cfg.addr)
    return cfg
