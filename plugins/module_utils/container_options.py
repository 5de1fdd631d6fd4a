# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The container module's option table: one row per option drives the argument spec, the
SDK create arguments and the comparison with an existing container.

Comparison never guesses defaults: the expected ``Config``/``HostConfig`` is what the
engine itself would build for these options and the image (``build_configs``), and the
actual one is the container's record, so what the image contributes (env, labels,
volumes, working dir, user...) is on both sides and never counts as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

Params = dict
Kwargs = dict


@dataclass(frozen=True)
class ContainerOption:
    name: str                                  # module option (and comparisons key)
    spec: dict                                 # argument spec entry
    kind: str                                  # value | set | dict (see compare.py)
    to_sdk: Callable[[Params], Kwargs]         # SDK create kwargs for this option
    read: Callable[[dict, dict], Any]          # comparable value from Config, HostConfig
    default_mode: str = "strict"
    extra_params: tuple = ()                   # other module options feeding this one


def _get(section: str, key: str, default: Any = None) -> Callable[[dict, dict], Any]:
    def read(config: dict, host: dict) -> Any:
        doc = config if section == "Config" else host
        value = doc.get(key)
        return default if value is None else value
    return read


def _simple(name: str, kwarg: str, section: str, key: str, kind: str = "value",
            spec: dict | None = None, default: Any = None,
            convert: Callable[[Any], Any] | None = None) -> ContainerOption:
    def to_sdk(p: Params) -> Kwargs:
        value = p[name]
        return {kwarg: convert(value) if convert else value}
    return ContainerOption(name, spec or {"type": "str"}, kind, to_sdk,
                           _get(section, key, default))


def scalar_string(value: Any) -> str:
    """Ansible gives YAML scalars; env and labels want strings (yes -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def string_map(values: dict | None) -> dict:
    return {str(k): scalar_string(v) for k, v in (values or {}).items()}


def env_to_dict(env: list | None) -> dict:
    out = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def read_env_file(path: str) -> dict:
    """docker's --env-file: KEY=VALUE lines, # comments, a bare KEY takes nothing here."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not key or " " in key:
                raise ValueError(f"{path} line {number}: variable name {key!r} is invalid")
            out[key] = value if sep else ""
    return out


def _env_sdk(p: Params) -> Kwargs:
    env = {}
    if p.get("env_file"):
        env.update(read_env_file(p["env_file"]))
    env.update(string_map(p.get("env")))
    return {"environment": env}


def _command(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return [str(v) for v in value]


def parse_port(spec: str) -> tuple[str, Any]:
    """``[ip:][host_port:]container_port[/proto]`` -> docker-py's ports entry."""
    text = str(spec)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        if proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid port {spec!r}: protocol must be tcp, udp or sctp")
    if text.startswith("["):                      # [v6]:host:container
        close = text.index("]")
        ip, rest = text[1:close], text[close + 2:]
        parts = [ip] + rest.split(":")
    else:
        parts = text.split(":")
    if len(parts) == 1:
        ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, container = "", parts[0], parts[1]
    elif len(parts) == 3:
        ip, host, container = parts
    else:
        raise ValueError(f"invalid port {spec!r}: use [ip:][host_port:]container_port[/proto]")
    for value in (host, container):
        if value and not value.replace("-", "").isdigit():
            raise ValueError(f"invalid port {spec!r}: {value!r} is not a port number")
    if not container:
        raise ValueError(f"invalid port {spec!r}: the container port is missing")
    key = f"{container}/{proto}"
    host_value: Any = int(host) if host.isdigit() else (host or None)
    if ip:
        return key, (ip, host_value) if host_value is not None else (ip,)
    return key, host_value


def ports_kwarg(specs: list | None) -> dict:
    out: dict = {}
    for spec in specs or []:
        key, value = parse_port(spec)
        if key in out:
            prev = out[key]
            out[key] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[key] = value
    return out


def _hostname_read(config: dict, host: dict) -> str:
    name = config.get("Hostname") or ""
    domain = config.get("Domainname") or ""
    return f"{name}.{domain}" if domain else name


def _volumes_read(config: dict, host: dict) -> list:
    return sorted(host.get("Binds") or []) + sorted(
        f"anonymous:{t}" for t in (config.get("Volumes") or {}))


def _restart_sdk(p: Params) -> Kwargs:
    return {"restart_policy": {"Name": p["restart_policy"] or "on-failure",
                               "MaximumRetryCount": p.get("restart_retries") or 0}}


def _duration(value: Any, what: str) -> int:
    from sdk._internal.units import parse_duration_ns

    if isinstance(value, int) and not isinstance(value, bool):
        return value * 10**9
    return parse_duration_ns(str(value))


def _healthcheck_sdk(p: Params) -> Kwargs:
    hc = p["healthcheck"]
    test = hc.get("test")
    if isinstance(test, str):
        test = ["NONE"] if test.upper() == "NONE" else ["CMD-SHELL", test]
    out: dict = {}
    if test:
        out["Test"] = [str(t) for t in test]
    for key, docker in (("interval", "Interval"), ("timeout", "Timeout"),
                        ("start_period", "StartPeriod"), ("start_interval", "StartInterval")):
        if hc.get(key) is not None:
            out[docker] = _duration(hc[key], f"healthcheck.{key}")
    if hc.get("retries") is not None:
        out["Retries"] = int(hc["retries"])
    return {"healthcheck": out}


def _log_sdk(p: Params) -> Kwargs:
    return {"log_config": {"Type": p.get("log_driver") or "json-file",
                           "Config": string_map(p.get("log_options"))}}


def _mounts_sdk(p: Params) -> Kwargs:
    out = []
    for m in p["mounts"]:
        item = {"type": m["type"], "target": m["target"]}
        if m.get("source"):
            item["source"] = m["source"]
        if m.get("read_only"):
            item["readonly"] = True
        if m.get("propagation"):
            item["bind-propagation"] = m["propagation"]
        if m.get("no_copy"):
            item["volume-nocopy"] = True
        if m.get("tmpfs_size"):
            item["tmpfs-size"] = m["tmpfs_size"]
        if m.get("tmpfs_mode"):
            item["tmpfs-mode"] = m["tmpfs_mode"]
        out.append(item)
    return {"mounts": out}


LIST_STR = {"type": "list", "elements": "str"}
MOUNT_SPEC = {
    "type": "list", "elements": "dict", "options": {
        "type": {"type": "str", "default": "volume", "choices": ["bind", "volume", "tmpfs"]},
        "source": {"type": "str"},
        "target": {"type": "str", "required": True},
        "read_only": {"type": "bool"},
        "propagation": {"type": "str", "choices": ["shared", "slave", "private", "rshared",
                                                   "rslave", "rprivate"]},
        "no_copy": {"type": "bool"},
        "tmpfs_size": {"type": "str"},
        "tmpfs_mode": {"type": "str"},
    }}
HEALTHCHECK_SPEC = {
    "type": "dict", "options": {
        "test": {"type": "raw"},
        "interval": {"type": "str"},
        "timeout": {"type": "str"},
        "start_period": {"type": "str"},
        "start_interval": {"type": "str"},
        "retries": {"type": "int"},
    }}

OPTIONS: tuple[ContainerOption, ...] = (
    _simple("command", "command", "Config", "Cmd", spec={"type": "raw"}, convert=_command),
    _simple("entrypoint", "entrypoint", "Config", "Entrypoint", spec={"type": "raw"},
            convert=_command),
    ContainerOption("env", {"type": "dict"}, "dict", _env_sdk,
                    lambda c, h: env_to_dict(c.get("Env")), extra_params=("env_file",)),
    _simple("labels", "labels", "Config", "Labels", "dict", {"type": "dict"}, {},
            convert=string_map),
    _simple("user", "user", "Config", "User"),
    _simple("working_dir", "working_dir", "Config", "WorkingDir"),
    ContainerOption("hostname", {"type": "str"}, "value",
                    lambda p: {"hostname": p["hostname"]}, _hostname_read),
    ContainerOption("volumes", LIST_STR, "set", lambda p: {"volumes": list(p["volumes"])},
                    _volumes_read),
    _simple("mounts", "mounts", "HostConfig", "Mounts", "set", MOUNT_SPEC, []),
    _simple("memory", "mem_limit", "HostConfig", "Memory", default=0),
    _simple("memory_swap", "memswap_limit", "HostConfig", "MemorySwap", default=0),
    _simple("memory_reservation", "mem_reservation", "HostConfig", "MemoryReservation",
            default=0),
    _simple("cpus", "cpus", "HostConfig", "NanoCpus", spec={"type": "float"}, default=0),
    _simple("cpu_shares", "cpu_shares", "HostConfig", "CpuShares", spec={"type": "int"},
            default=0),
    _simple("cpuset_cpus", "cpuset_cpus", "HostConfig", "CpusetCpus", default=""),
    _simple("pids_limit", "pids_limit", "HostConfig", "PidsLimit", spec={"type": "int"}),
    ContainerOption("restart_policy", {"type": "str", "choices": [
        "no", "always", "on-failure", "unless-stopped"]}, "value", _restart_sdk,
        _get("HostConfig", "RestartPolicy"), extra_params=("restart_retries",)),
    ContainerOption("healthcheck", HEALTHCHECK_SPEC, "value", _healthcheck_sdk,
                    _get("Config", "Healthcheck")),
    _simple("capabilities", "cap_add", "HostConfig", "CapAdd", "set", LIST_STR, []),
    _simple("cap_drop", "cap_drop", "HostConfig", "CapDrop", "set", LIST_STR, []),
    _simple("privileged", "privileged", "HostConfig", "Privileged", spec={"type": "bool"},
            default=False),
    _simple("read_only", "read_only", "HostConfig", "ReadonlyRootfs", spec={"type": "bool"},
            default=False),
    _simple("tmpfs", "tmpfs", "HostConfig", "Tmpfs", "dict", LIST_STR, {}),
    _simple("ulimits", "ulimits", "HostConfig", "Ulimits", "set", LIST_STR, []),
    _simple("network_mode", "network_mode", "HostConfig", "NetworkMode"),
    _simple("published_ports", "ports", "HostConfig", "PortBindings", "dict",
            {"type": "list", "elements": "str", "aliases": ["ports"]}, {},
            convert=ports_kwarg),
    _simple("stop_signal", "stop_signal", "Config", "StopSignal"),
    _simple("stop_timeout", "stop_timeout", "Config", "StopTimeout", spec={"type": "int"}),
    ContainerOption("log_driver", {"type": "str"}, "value", _log_sdk,
                    lambda c, h: (h.get("LogConfig") or {}).get("Type"),
                    extra_params=("log_options",)),
    ContainerOption("log_options", {"type": "dict"}, "dict", _log_sdk,
                    lambda c, h: (h.get("LogConfig") or {}).get("Config") or {}),
    _simple("sysctls", "sysctls", "HostConfig", "Sysctls", "dict", {"type": "dict"}, {},
            convert=string_map),
    _simple("dns_servers", "dns", "HostConfig", "Dns", spec=LIST_STR, default=[]),
    ContainerOption("etc_hosts", {"type": "dict"}, "set",
                    lambda p: {"extra_hosts": string_map(p["etc_hosts"])},
                    _get("HostConfig", "ExtraHosts", [])),
    _simple("devices", "devices", "HostConfig", "Devices", "set", LIST_STR, []),
    _simple("shm_size", "shm_size", "HostConfig", "ShmSize"),
    _simple("security_opts", "security_opt", "HostConfig", "SecurityOpt", "set", LIST_STR,
            []),
    _simple("groups", "group_add", "HostConfig", "GroupAdd", "set", LIST_STR, []),
    _simple("oom_score_adj", "oom_score_adj", "HostConfig", "OomScoreAdj",
            spec={"type": "int"}, default=0),
    _simple("cgroup_parent", "cgroup_parent", "HostConfig", "CgroupParent", default=""),
    _simple("tty", "tty", "Config", "Tty", spec={"type": "bool"}, default=False),
    _simple("interactive", "stdin_open", "Config", "OpenStdin", spec={"type": "bool"},
            default=False),
    _simple("auto_remove", "auto_remove", "HostConfig", "AutoRemove", spec={"type": "bool"},
            default=False),
)
BY_NAME = {o.name: o for o in OPTIONS}

EXTRA_SPECS = {
    "env_file": {"type": "path"},
    "restart_retries": {"type": "int"},
}


def argument_spec() -> dict:
    spec = {o.name: dict(o.spec) for o in OPTIONS}
    spec.update(EXTRA_SPECS)
    return spec


def given(option: ContainerOption, params: Params) -> bool:
    return params.get(option.name) is not None or any(
        params.get(x) is not None for x in option.extra_params)


def sdk_kwargs(params: Params) -> Kwargs:
    """docker-py style create kwargs for every option the task sets."""
    out: dict = {}
    for option in OPTIONS:
        if given(option, params):
            out.update(option.to_sdk(params))
    return out


def default_modes() -> dict:
    return {o.name: o.default_mode for o in OPTIONS}
