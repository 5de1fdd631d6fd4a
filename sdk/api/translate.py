"""Docker Engine API request bodies -> the SDK's docker-py keyword arguments.

The engine validates docker-py's keyword names in one place
(:func:`sdk.containers.options.build_configs`); the API server maps the wire format
onto those names instead of keeping a second validator, so the CLI, the SDK and the
API accept and refuse exactly the same things.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sdk.errors import InvalidArgument

# Config key -> docker-py kwarg, for values passed through unchanged
CONFIG_KEYS: dict[str, str] = {
    "Entrypoint": "entrypoint", "Env": "environment", "WorkingDir": "working_dir",
    "User": "user", "Hostname": "hostname", "Domainname": "domainname",
    "Labels": "labels", "Tty": "tty", "OpenStdin": "stdin_open", "StopSignal": "stop_signal",
    "StopTimeout": "stop_timeout", "Healthcheck": "healthcheck", "MacAddress": "mac_address",
}
HOST_KEYS: dict[str, str] = {
    "Binds": "volumes", "Tmpfs": "tmpfs", "ReadonlyRootfs": "read_only",
    "Privileged": "privileged", "CapAdd": "cap_add", "CapDrop": "cap_drop",
    "SecurityOpt": "security_opt", "Memory": "mem_limit", "MemorySwap": "memswap_limit",
    "MemoryReservation": "mem_reservation", "NanoCpus": "nano_cpus",
    "CpuShares": "cpu_shares", "CpuPeriod": "cpu_period", "CpuQuota": "cpu_quota",
    "CpusetCpus": "cpuset_cpus", "CpusetMems": "cpuset_mems", "PidsLimit": "pids_limit",
    "BlkioWeight": "blkio_weight", "RestartPolicy": "restart_policy",
    "NetworkMode": "network_mode", "AutoRemove": "auto_remove", "VolumesFrom": "volumes_from",
    "LogConfig": "log_config", "Sysctls": "sysctls", "ShmSize": "shm_size",
    "OomKillDisable": "oom_kill_disable", "OomScoreAdj": "oom_score_adj",
    "GroupAdd": "group_add", "Dns": "dns", "DnsSearch": "dns_search", "DnsOptions": "dns_opt",
    "ExtraHosts": "extra_hosts", "CgroupParent": "cgroup_parent", "Init": "init",
    "PublishAllPorts": "publish_all_ports", "PidMode": "pid_mode", "IpcMode": "ipc_mode",
    "UTSMode": "uts_mode", "UsernsMode": "userns_mode", "Links": "links",
}
THROTTLES = {"BlkioDeviceReadBps": "device_read_bps", "BlkioDeviceWriteBps": "device_write_bps",
             "BlkioDeviceReadIOps": "device_read_iops",
             "BlkioDeviceWriteIOps": "device_write_iops"}
# zero values the docker CLI always sends; they mean "not set", not "set to zero"
UNSET_ZERO = frozenset({"Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares",
                        "CpuPeriod", "CpuQuota", "BlkioWeight", "ShmSize", "OomScoreAdj",
                        "StopTimeout"})


def _is_unset(key: str, value: Any) -> bool:
    if value is None or value is False or value == "" or value == [] or value == {}:
        return True   # every boolean option defaults to false
    if key in UNSET_ZERO and value == 0:
        return True
    if key == "PidsLimit" and value in (0, -1):
        return True
    if key == "RestartPolicy" and not (value or {}).get("Name"):
        return True
    if key == "LogConfig" and not (value or {}).get("Type"):
        return True
    return bool(key == "NetworkMode" and value == "default")


def _ports(bindings: Mapping[str, Any] | None) -> dict[str, Any]:
    """PortBindings -> docker-py ``ports`` ({"80/tcp": [("ip", "8080"), ...]})."""
    out: dict[str, Any] = {}
    for port, hosts in (bindings or {}).items():
        if not isinstance(hosts, list):
            raise InvalidArgument(f"PortBindings[{port!r}] must be a list")
        targets: list[Any] = []
        for h in hosts or [{}]:
            ip, hp = (h or {}).get("HostIp") or "", (h or {}).get("HostPort") or ""
            targets.append((ip, int(hp) if hp else None) if ip else (int(hp) if hp else None))
        out[port] = targets if len(targets) > 1 else targets[0]
    return out


def _mounts(mounts: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """API ``Mounts`` -> docker-py Mount-shaped dicts (the SDK accepts both)."""
    out = []
    for m in mounts or []:
        item: dict[str, Any] = {"Type": m.get("Type", "volume"), "Target": m.get("Target", ""),
                                "Source": m.get("Source", ""),
                                "ReadOnly": bool(m.get("ReadOnly"))}
        for key in ("BindOptions", "VolumeOptions", "TmpfsOptions", "Consistency"):
            if m.get(key):
                item[key] = m[key]
        out.append(item)
    return out


def _ulimits(items: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"Name": u["Name"], "Soft": u["Soft"], "Hard": u["Hard"]} for u in items or []]


def _devices(items: list[Mapping[str, Any]] | None) -> list[str]:
    return [f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:"
            f"{d.get('CgroupPermissions') or 'rwm'}" for d in items or []]


SPECIAL_HOST: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "PortBindings": ("ports", _ports), "Mounts": ("mounts", _mounts),
    "Ulimits": ("ulimits", _ulimits), "Devices": ("devices", _devices),
}


def create_kwargs(body: Mapping[str, Any], name: str | None) -> tuple[str, dict[str, Any]]:
    """``POST /containers/create`` body -> (image, kwargs for ContainerCollection.create)."""
    if not isinstance(body, Mapping):
        raise InvalidArgument("the request body must be a JSON object")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise InvalidArgument("no image specified (the body has no \"Image\")")
    kwargs: dict[str, Any] = {}
    if name:
        kwargs["name"] = name
    cmd = body.get("Cmd")
    if cmd not in (None, []):
        kwargs["command"] = cmd
    for key, kw in CONFIG_KEYS.items():
        value = body.get(key)
        if key == "Entrypoint" and value == []:
            continue
        if not _is_unset(key, value) or (key == "Entrypoint" and value == [""]):
            kwargs[kw] = value
    if body.get("OpenStdin"):   # StdinOnce is set by clients that attach stdin at once
        kwargs["detach"] = not body.get("StdinOnce")
    volumes = body.get("Volumes") or {}
    host = body.get("HostConfig")
    host = {} if host is None else host
    if not isinstance(host, Mapping):
        raise InvalidArgument("HostConfig must be a JSON object")
    for key, value in host.items():
        if _is_unset(key, value):
            continue
        if key in HOST_KEYS:
            kwargs[HOST_KEYS[key]] = value
        elif key in THROTTLES:
            kwargs[THROTTLES[key]] = [{"Path": t["Path"], "Rate": t["Rate"]} for t in value]
        elif key in SPECIAL_HOST:
            kw, convert = SPECIAL_HOST[key]
            kwargs[kw] = convert(value)
    if volumes:   # anonymous volumes from `-v /path` arrive as Config.Volumes
        binds = list(kwargs.get("volumes") or [])
        bound = {b.split(":")[1] if ":" in b else b for b in binds}
        binds += [path for path in volumes if path not in bound]
        kwargs["volumes"] = binds
    _endpoint(body.get("NetworkingConfig"), kwargs)
    exposed = body.get("ExposedPorts") or {}
    if exposed and "ports" not in kwargs and kwargs.get("publish_all_ports"):
        kwargs["ports"] = {p: None for p in exposed}
    if exposed:     # EXPOSE without publishing (inspect reports them, -P publishes them)
        kwargs["expose"] = list(exposed)
    return image, kwargs


def _endpoint(networking: Any, kwargs: dict[str, Any]) -> None:
    """``NetworkingConfig.EndpointsConfig``: the network's aliases, address and MAC
    (docker's API before 1.44 takes one network at create; connect adds more)."""
    if not networking:
        return
    if not isinstance(networking, Mapping):
        raise InvalidArgument("NetworkingConfig must be a JSON object")
    endpoints = networking.get("EndpointsConfig") or {}
    if not isinstance(endpoints, Mapping):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be a JSON object")
    if not endpoints:
        return
    mode = kwargs.get("network_mode")
    if mode is None:
        if len(endpoints) > 1:
            raise InvalidArgument("Container cannot be connected to network endpoints: "
                                  + ", ".join(sorted(endpoints)))
        mode = kwargs["network_mode"] = next(iter(endpoints))
    cfg = endpoints.get(mode)
    if cfg is None:
        if len(endpoints) == 1:
            raise InvalidArgument(f"NetworkingConfig names network {next(iter(endpoints))!r}"
                                  f" but the network mode is {mode!r}")
        raise InvalidArgument("Container cannot be connected to network endpoints: "
                              + ", ".join(sorted(endpoints)))
    if not isinstance(cfg, Mapping):
        return
    if cfg.get("Aliases"):
        kwargs["network_aliases"] = list(cfg["Aliases"])
    ipam = cfg.get("IPAMConfig") or {}
    if ipam.get("IPv4Address"):
        kwargs["ip"] = ipam["IPv4Address"]
    if cfg.get("MacAddress") and "mac_address" not in kwargs:
        kwargs["mac_address"] = cfg["MacAddress"]
