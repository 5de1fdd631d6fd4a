"""daemon.json: the option table, loading, and every validation message."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from sdk.config import (
    BY_KEY,
    OPTIONS,
    DaemonConfig,
    config_to_dict,
    load_config,
    parse_ram_size,
    validate_config_dict,
)
from sdk.errors import ConfigError, FailedPrecondition

SRC = "/etc/berth/daemon.json"

BRIEF_KEYS = {
    "data-root", "storage-driver", "log-driver", "log-opts", "default-ulimits",
    "selinux-enabled", "insecure-registries", "registry-mirrors", "max-concurrent-downloads",
    "max-concurrent-uploads", "bip", "iptables", "ip-forward", "ip-masq", "userland-proxy",
    "default-address-pools", "dns", "dns-search", "dns-opts", "mtu", "hosts", "group",
    "live-restore", "debug", "log-level", "exec-opts", "cgroup-parent", "default-runtime",
    "storage-opts", "labels", "features", "experimental", "default-shm-size",
    "no-new-privileges", "icc", "fixed-cidr", "shutdown-timeout"}

FULL: dict[str, Any] = {
    "data-root": "/srv/berth",
    "storage-driver": "overlay2",
    "storage-opts": ["overlay.size=10G"],
    "log-driver": "local",
    "log-opts": {"max-size": "10m", "max-file": "3", "compress": "true", "labels": "a,b",
                 "env": "HOME", "tag": "{{.Name}}"},
    "log-level": "warn",
    "debug": True,
    "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048},
                        "core": {"Soft": -1, "Hard": -1}},
    "selinux-enabled": True,
    "no-new-privileges": True,
    "insecure-registries": ["myregistry.local:5000", "10.0.0.0/8", "[::1]:5000", "reg"],
    "registry-mirrors": ["https://mirror.gcr.io", "http://10.0.0.1:5000/"],
    "max-concurrent-downloads": 6,
    "max-concurrent-uploads": 2,
    "max-download-attempts": 3,
    "bip": "172.30.0.1/16",
    "fixed-cidr": "172.30.1.0/24",
    "default-address-pools": [{"base": "172.80.0.0/16", "size": 24}],
    "iptables": False, "ip-forward": False, "ip-masq": False, "userland-proxy": False,
    "icc": False,
    "mtu": 1450,
    "dns": ["1.1.1.1", "2606:4700:4700::1111"],
    "dns-search": ["example.com", "."],
    "dns-opts": ["ndots:2"],
    "hosts": ["unix:///run/berth.sock", "tcp://127.0.0.1:2376", "fd://"],
    "group": "docker",
    "tls": True, "tlsverify": True, "tlscacert": "/etc/berth/ca.pem",
    "tlscert": "/etc/berth/cert.pem", "tlskey": "/etc/berth/key.pem",
    "live-restore": True,
    "shutdown-timeout": 30,
    "exec-opts": ["native.cgroupdriver=systemd"],
    "cgroup-parent": "berth.slice",
    "default-runtime": "runc",
    "labels": ["env=prod"],
    "features": {"buildkit": False},
    "experimental": True,
    "default-shm-size": "128M",
}


def _yes() -> bool:
    return True


# --------------------------------------------------------------------------- the table


def test_table_covers_the_brief_and_has_docs() -> None:
    assert set(BY_KEY) >= BRIEF_KEYS
    assert set(FULL) == set(BY_KEY)
    for o in OPTIONS:
        assert o.description and o.attr == o.key.replace("-", "_")
        assert o.kind in ("string", "bool", "int", "list", "object", "size")


def test_dataclass_fields_are_the_table() -> None:
    names = {f.name for f in dataclasses.fields(DaemonConfig)} - {"source", "keys"}
    assert names == {o.attr for o in OPTIONS}


def test_defaults() -> None:
    cfg = DaemonConfig()
    assert cfg.log_driver == "json-file" and cfg.log_opts == {}
    assert cfg.max_concurrent_downloads == 3 and cfg.max_concurrent_uploads == 5
    assert cfg.iptables is True and cfg.mtu == 1500 and cfg.shutdown_timeout == 15
    assert cfg.insecure_registries == () and cfg.default_shm_size_bytes == 64 << 20
    assert config_to_dict(cfg) == {}
    full = config_to_dict(cfg, only_set=False)
    assert set(full) == set(BY_KEY) and full["hosts"] == [] and full["mtu"] == 1500


# --------------------------------------------------------------------------- loading


def test_missing_or_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(None) == DaemonConfig()
    assert load_config(tmp_path / "nope.json") == DaemonConfig()
    (tmp_path / "empty.json").write_text(" \n")
    assert load_config(tmp_path / "empty.json") == DaemonConfig()


def test_happy_path_every_option(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(FULL, indent=2))
    cfg = load_config(path, selinux_available=_yes)
    assert cfg.source == str(path) and cfg.keys == frozenset(FULL)
    assert cfg.data_root == "/srv/berth" and cfg.storage_driver == "overlay2"
    assert cfg.insecure_registries == ("myregistry.local:5000", "10.0.0.0/8", "[::1]:5000",
                                       "reg")
    assert cfg.default_ulimits["nofile"] == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert cfg.log_opts["max-size"] == "10m" and cfg.get("log-level") == "warn"
    assert cfg.default_shm_size_bytes == 128 << 20
    assert cfg.is_set("mtu") and not DaemonConfig().is_set("mtu")
    assert config_to_dict(cfg) == FULL
    assert validate_config_dict(config_to_dict(cfg), SRC, selinux_available=_yes) == cfg


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('\ufeff{"debug": true, "bip": ""}')       # BOM, empty = unset
    cfg = load_config(path)
    assert cfg.debug is True and cfg.bip == "" and cfg.mtu == 1500
    assert config_to_dict(cfg) == {"debug": True, "bip": ""}


def test_values_are_copied_not_shared() -> None:
    data = {"dns": ["1.1.1.1"], "log-opts": {"max-size": "1m"}}
    cfg = validate_config_dict(data, SRC)
    data["dns"].append("8.8.8.8")
    data["log-opts"]["max-size"] = "2m"
    assert cfg.dns == ("1.1.1.1",) and cfg.log_opts == {"max-size": "1m"}


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{\n  "debug": true,\n  "mtu": 1500,\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path} is not valid JSON: ")
    assert "line 4 column 1" in str(info.value)


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)                       # a directory
    path = tmp_path / "daemon.json"
    path.write_bytes(b'{"group": "\xff"}')
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(path)


def test_selinux_enabled_needs_selinux(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"selinux-enabled": true}')
    with pytest.raises(FailedPrecondition) as info:
        load_config(path, selinux_available=lambda: False)
    assert str(info.value).startswith(
        f"selinux-enabled is true in {path} but SELinux is not enabled on this host "
        "(no /sys/fs/selinux): ")
    assert load_config(path, selinux_available=_yes).selinux_enabled is True
    path.write_text('{"selinux-enabled": false}')
    assert load_config(path, selinux_available=lambda: False).selinux_enabled is False


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("data, message", [
    ([1, 2], f"{SRC} must contain a JSON object ({{...}}), got [1, 2]"),
    ({"foo": 1}, f'unknown key "foo" in {SRC}'),
    ({"log-opt": {}}, f'unknown key "log-opt" in {SRC} (did you mean "log-opts"?)'),
    ({"max-concurrent-downloads": "3"},
     f'"max-concurrent-downloads" in {SRC} must be a positive integer, got "3"'),
    ({"max-concurrent-uploads": 0},
     f'"max-concurrent-uploads" in {SRC} must be a positive integer, got 0'),
    ({"mtu": 1500.0}, f'"mtu" in {SRC} must be a positive integer, got 1500.0'),
    ({"mtu": True}, f'"mtu" in {SRC} must be a positive integer, got true'),
    ({"shutdown-timeout": -1}, f'"shutdown-timeout" in {SRC} must be an integer >= 0, got -1'),
    ({"debug": "true"}, f'"debug" in {SRC} must be true or false, got "true"'),
    ({"group": 0}, f'"group" in {SRC} must be a string, got 0'),
    ({"dns-opts": "ndots:2"}, f'"dns-opts" in {SRC} must be a list of strings, got "ndots:2"'),
    ({"data-root": "var/lib/berth"},
     f'"data-root" in {SRC} must be an absolute path, got "var/lib/berth"'),
    ({"storage-driver": "aufs"},
     f'"storage-driver" in {SRC} must be one of "overlay", "overlay2" (an alias of overlay), '
     '"vfs", got "aufs"'),
    ({"log-driver": "syslog"},
     f'"log-driver" in {SRC} must be one of "json-file", "local" (berth writes json-file '
     'logs for it), "none", got "syslog"'),
    ({"log-level": "verbose"}, f'"log-level" in {SRC} must be one of "trace", "debug"'),
    ({"default-runtime": "crun"},
     f'"default-runtime" in {SRC} must be one of "berth", "runc" (served by berth\'s own '
     'runtime), got "crun"'),
    ({"log-opts": {"max-file": 3}},
     f'"log-opts" in {SRC} must be an object whose values are strings, got {{"max-file": 3}}'),
    ({"log-opts": {"max-size": "10x"}},
     f"\"log-opts\" in {SRC} is invalid: invalid size: '10x' for log opt max-size"),
    ({"log-opts": {"max-file": "0"}},
     f'"log-opts" in {SRC} is invalid: max-file cannot be less than 1'),
    ({"log-opts": {"compress": "yes", "max-size": "1m"}},
     f"\"log-opts\" in {SRC} is invalid: invalid compress 'yes'"),
    ({"log-opts": {"compress": "true"}},
     f'"log-opts" in {SRC} is invalid: compress cannot be true when max-size is not set'),
    ({"log-opts": {"colour": "red"}},
     f"\"log-opts\" in {SRC} is invalid: unknown log opt 'colour' for json-file log driver"),
    ({"default-ulimits": []}, f'"default-ulimits" in {SRC} must be an object like '
                              '{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}'),
    ({"default-ulimits": {"files": {"Soft": 1, "Hard": 1}}},
     f'"default-ulimits" in {SRC} has an unknown ulimit "files" (known: core, cpu'),
    ({"default-ulimits": {"nofile": {"Soft": "1024", "Hard": 2048}}},
     f'"default-ulimits" in {SRC} has an invalid entry "nofile": it must look like '
     '{"Name": "nofile", "Soft": 1024, "Hard": 2048}'),
    ({"default-ulimits": {"nofile": {"Name": "nproc", "Soft": 1, "Hard": 2}}},
     f'"default-ulimits" in {SRC} has "Name": "nproc" under "nofile": they must match'),
    ({"default-ulimits": {"nofile": {"Soft": 4096, "Hard": 1024}}},
     f'"default-ulimits" in {SRC} has a soft limit (4096) greater than the hard limit (1024)'),
    ({"insecure-registries": ["http://reg:5000"]},
     f'"insecure-registries" in {SRC} has an invalid entry "http://reg:5000": insecure '
     "registries are host[:port] or a CIDR, without a scheme"),
    ({"insecure-registries": ["10.0.0.0/33"]},
     f'"insecure-registries" in {SRC} has an invalid entry "10.0.0.0/33": it is neither '
     "host[:port] nor a CIDR"),
    ({"insecure-registries": ["reg:99999"]},
     f'"insecure-registries" in {SRC} has an invalid entry "reg:99999": the port must be a '
     "number between 1 and 65535"),
    ({"insecure-registries": ["bad_host"]},
     f'"insecure-registries" in {SRC} has an invalid entry "bad_host": \'bad_host\' is not a '
     "valid host name or IP address"),
    ({"registry-mirrors": ["mirror.gcr.io"]},
     f'"registry-mirrors" in {SRC} has an invalid entry "mirror.gcr.io": mirrors are '
     "http:// or https:// URLs"),
    ({"registry-mirrors": ["https://u:p@mirror"]}, "username/password are not allowed"),
    ({"registry-mirrors": ["https://mirror/?x=1"]}, "query or fragment are not allowed"),
    ({"registry-mirrors": ["https://"]}, "the URL has no host"),
    ({"bip": "172.30.0.1"}, f'"bip" in {SRC} must be an IPv4 address with a prefix length, '
                            'like "172.30.0.1/16", got "172.30.0.1"'),
    ({"bip": "172.30.0.0/16"}, f'"bip" in {SRC} must be the bridge\'s host address with a '
                               'prefix length, like "172.30.0.1/16", got "172.30.0.0/16" '
                               "(that is the network address)"),
    ({"bip": "fd00::1/64"}, f'"bip" in {SRC} must be an IPv4 address with a prefix length'),
    ({"fixed-cidr": "10.0.0.1"}, f'"fixed-cidr" in {SRC} must be an IPv4 CIDR like '
                                 '"172.30.1.0/24", got "10.0.0.1"'),
    ({"bip": "172.30.0.1/16", "fixed-cidr": "10.0.0.0/24"},
     f'"fixed-cidr" 10.0.0.0/24 in {SRC} is not inside the "bip" network 172.30.0.0/16'),
    ({"default-address-pools": {"base": "10.0.0.0/8"}},
     f'"default-address-pools" in {SRC} must be a list like'),
    ({"default-address-pools": [{"base": "10.0.0.0/8"}]},
     f'"default-address-pools" in {SRC} has an invalid pool {{"base": "10.0.0.0/8"}}'),
    ({"default-address-pools": [{"base": "10.0.0.0/33", "size": 24}]},
     'has an invalid pool base "10.0.0.0/33": it must be a CIDR'),
    ({"default-address-pools": [{"base": "10.0.0.0/16", "size": 8}]},
     'has pool "10.0.0.0/16" with size 8: the size must be between 16 and 32'),
    ({"dns": ["dns.google"]}, f'"dns" in {SRC} has an invalid entry "dns.google": DNS '
                              "servers are IP addresses"),
    ({"dns-search": ["-bad-.com"]}, f'"dns-search" in {SRC} has an invalid entry '
                                    '"-bad-.com": it is not a valid domain name'),
    ({"hosts": ["/run/berth.sock"]}, f'"hosts" in {SRC} has an invalid entry '
                                     '"/run/berth.sock": use unix:///path/to/socket or '
                                     "tcp://host:port"),
    ({"hosts": ["unix://run/berth.sock"]}, "use unix:///path/to/socket"),
    ({"hosts": ["tcp://0.0.0.0:0"]}, "the port must be a number between 1 and 65535"),
    ({"exec-opts": ["native.cgroupdriver"]},
     "invalid exec-opt (native.cgroupdriver): must be formatted 'opt=value'"),
    ({"exec-opts": ["native.cgroupdriver=fast"]}, "native.cgroupdriver must be cgroupfs or "
                                                  "systemd"),
    ({"exec-opts": ["isolation=hyperv"]}, "unknown exec-opt 'isolation'"),
    ({"labels": ["prod"]}, f'"labels" in {SRC} has an invalid entry "prod": it must be '
                           "key=value"),
    ({"storage-opts": ["=1"]}, "it must be key=value"),
    ({"features": {"buildkit": "no"}}, f'"features" in {SRC} must be an object of true/false '
                                       'flags, like {"buildkit": false}, got {"buildkit": "no"}'),
    ({"default-shm-size": "lots"}, f'"default-shm-size" in {SRC} must be a size like "64m" '
                                   "(a number of bytes with an optional k, m or g suffix), "
                                   'got "lots"'),
    ({"default-shm-size": 0}, 'must be a size like "64m"'),
])
def test_errors(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config_dict(data, SRC, selinux_available=_yes)
    assert str(info.value).startswith(message) or message in str(info.value)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"max-concurrent-downloads": "3"}')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == \
        f'"max-concurrent-downloads" in {path} must be a positive integer, got "3"'


def test_log_opts_are_not_checked_for_log_driver_none() -> None:
    cfg = validate_config_dict({"log-driver": "none", "log-opts": {"anything": "x"}}, SRC)
    assert cfg.log_opts == {"anything": "x"}


def test_default_shm_size_accepts_bytes() -> None:
    assert validate_config_dict({"default-shm-size": 1 << 20}, SRC).default_shm_size_bytes \
        == 1 << 20


@pytest.mark.parametrize("text, size", [
    ("64m", 64 << 20), ("64M", 64 << 20), ("1g", 1 << 30), ("1.5k", 1536), ("512", 512),
    ("10 MiB", 10 << 20), ("2gb", 2 << 30),
])
def test_parse_ram_size(text: str, size: int) -> None:
    assert parse_ram_size(text) == size


def test_reloadable_options_for_the_ansible_module() -> None:
    reloadable = {o.key for o in OPTIONS if o.reloadable}
    assert {"debug", "labels", "live-restore", "insecure-registries", "registry-mirrors",
            "max-concurrent-downloads", "shutdown-timeout"} <= reloadable
    assert "data-root" not in reloadable and "storage-driver" not in reloadable
