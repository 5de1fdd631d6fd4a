"""docker-py ``containers.create/run`` keyword arguments -> Docker's Config and HostConfig.

The container record stores Docker-shaped ``Config`` and ``HostConfig`` dicts, so
``inspect`` output, comparisons in the Ansible modules and the future Engine API all
read the same document.  Validation happens here, before anything is created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sdk._internal import units
from sdk.errors import InvalidArgument

CREATE_KWARGS = frozenset({
    "command", "entrypoint", "environment", "working_dir", "user", "hostname", "domainname",
    "labels", "volumes", "mounts", "tmpfs", "read_only", "privileged", "cap_add", "cap_drop",
    "security_opt", "mem_limit", "memswap_limit", "mem_reservation", "nano_cpus",
    "cpu_shares", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit",
    "blkio_weight", "device_read_bps", "device_write_bps", "device_read_iops",
    "device_write_iops", "ulimits", "restart_policy", "healthcheck", "stop_signal",
    "stop_timeout", "tty", "stdin_open", "network_mode", "network_disabled", "name",
    "auto_remove", "volumes_from", "log_config", "devices", "sysctls", "shm_size",
    "oom_kill_disable", "oom_score_adj", "group_add", "dns", "dns_search", "dns_opt",
    "extra_hosts", "cgroup_parent", "init", "ports", "publish_all_ports", "mac_address",
    "platform", "cpus", "detach", "remove", "stream", "stdout", "stderr", "use_config_proxy",
    "network", "networking_config", "pid_mode", "ipc_mode", "uts_mode", "userns_mode",
    "links", "pull", "attach_stdin", "ip", "network_aliases", "expose", "egress_rate",
    "ingress_rate",
})

CAPABILITIES = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
    "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID",
    "SETPCAP", "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE",
    "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "WAKE_ALARM",
)
PROPAGATIONS = frozenset({"shared", "slave", "private", "rshared", "rslave", "rprivate"})
MIN_MEMORY = 6 * 1024 * 1024


def _as_list(value: str | Sequence[str] | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            import shlex

            return shlex.split(value)
        except ValueError as exc:
            raise InvalidArgument(f"invalid {flag}: {exc}") from None
    if not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{flag} must be a string or a list of strings")
    return list(value)


def _env_list(env: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    if env is None:
        return []
    if isinstance(env, Mapping):
        return [f"{k}={'' if v is None else v}" for k, v in env.items()]
    out = []
    for item in env:
        if not isinstance(item, str) or not item or item.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        out.append(item)
    return out


def _labels(labels: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    out = {}
    for item in labels:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label: {item!r}")
        out[key] = value
    return out


def merge_env(image_env: Sequence[str], user_env: Sequence[str]) -> list[str]:
    """Docker's merge: user values replace image values of the same name, order kept."""
    merged: dict[str, str] = {}
    for item in list(image_env) + list(user_env):
        key = item.partition("=")[0]
        merged.pop(key, None)
        merged[key] = item
    return list(merged.values())


def _bytes(value: Any, flag: str, *, allow_minus_one: bool = False) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid {flag}: {value!r}")
    if isinstance(value, int):
        if value < 0 and not (allow_minus_one and value == -1):
            raise InvalidArgument(f"invalid {flag}: {value} (must not be negative)")
        return value
    try:
        return units.parse_bytes(str(value), allow_negative_one=allow_minus_one)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid {flag}: {exc}") from None


def bytes_option(value: Any, flag: str, *, allow_minus_one: bool = False) -> int:
    """A size option ("512m", 1048576) in bytes; InvalidArgument naming ``flag``."""
    return _bytes(value, flag, allow_minus_one=allow_minus_one)


def int_option(value: Any, flag: str) -> int:
    """An integer option; InvalidArgument naming ``flag``."""
    return _int(value, flag)


def _int(value: Any, flag: str, lo: int | None = None, hi: int | None = None) -> int:
    if value is None:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid {flag}: {value!r} is not an integer") from None
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidArgument(f"invalid {flag}: {number} (must be {rng})")
    return number


def _caps(values: Sequence[str] | None, flag: str) -> list[str]:
    """Validated, but kept as given: dockerd stores CapAdd/CapDrop as the client sent
    them (community.docker compares them back); specgen normalizes."""
    out = []
    for raw in values or []:
        name = raw.upper()
        name = name[4:] if name.startswith("CAP_") else name
        if name != "ALL" and name not in CAPABILITIES:
            raise InvalidArgument(f"invalid {flag}: unknown capability {raw!r}")
        out.append(raw)
    return out


def _throttle(values: Any, flag: str, iops: bool) -> list[dict[str, Any]]:
    out = []
    for item in values or []:
        if isinstance(item, str):
            path, rate = (units.parse_device_iops(item) if iops
                          else units.parse_device_rate(item))
        else:
            path, rate = item.get("Path") or item.get("path"), item.get("Rate", item.get("rate"))
            rate = int(rate) if iops else _bytes(rate, flag)
        if not path or not str(path).startswith("/dev/"):
            raise InvalidArgument(f"invalid {flag}: {path!r} is not a device path")
        out.append({"Path": path, "Rate": rate})
    return out


def _ulimits(values: Any) -> list[dict[str, Any]]:
    out = []
    for item in values or []:
        if isinstance(item, str):
            name, soft, hard = units.parse_ulimit(item)
        elif isinstance(item, Mapping):
            name = item.get("Name") or item.get("name")
            soft = int(item.get("Soft", item.get("soft", 0)))
            hard = int(item.get("Hard", item.get("hard", soft)))
        else:   # docker.types.Ulimit-like
            name, soft, hard = item.name, item.soft, item.hard
        out.append({"Name": name, "Soft": soft, "Hard": hard})
    return out


def parse_volume_spec(spec: str) -> dict[str, Any]:
    """``-v`` syntax: NAME:/dst[:opts], /src:/dst[:opts] or /dst (anonymous)."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, opts = "", parts[0], ""
    elif len(parts) == 2:
        if parts[1].startswith("/"):
            src, dst, opts = parts[0], parts[1], ""
        else:
            src, dst, opts = "", parts[0], parts[1]
    elif len(parts) == 3:
        src, dst, opts = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if not dst.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': invalid mount config for type "
            f"\"{'bind' if src.startswith('/') else 'volume'}\": invalid mount path: "
            f"'{dst}' mount path must be absolute")
    if dst == "/":
        raise InvalidArgument(f"invalid volume specification: '{spec}': "
                              "destination can't be '/'")
    readonly, propagation, nocopy, relabel = False, "", False, ""
    for opt in filter(None, opts.split(",")):
        if opt in ("ro", "rw"):
            readonly = opt == "ro"
        elif opt in PROPAGATIONS:
            propagation = opt
        elif opt == "nocopy":
            nocopy = True
        elif opt in ("z", "Z"):
            relabel = opt
        else:
            raise InvalidArgument(f"invalid volume specification: '{spec}': "
                                  f"invalid mode: {opt}")
    if src and not src.startswith("/"):
        _validate_volume_name(src)
    kind = "bind" if src.startswith("/") else "volume"
    return {"Type": kind, "Source": src, "Target": dst.rstrip("/") or "/", "ReadOnly": readonly,
            "Propagation": propagation, "NoCopy": nocopy, "Relabel": relabel}


def _validate_volume_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise InvalidArgument(
            f'"{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")


def parse_mount_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` (or a docker-py Mount dict)."""
    if isinstance(spec, Mapping):
        fields = {str(k).lower(): v for k, v in spec.items()}
    else:
        fields = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            fields[key] = value if sep else True
    kind = str(fields.get("type", "volume"))
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount {spec!r}: type must be bind, volume or tmpfs")
    target = fields.get("target") or fields.get("destination") or fields.get("dst")
    if not target or not str(target).startswith("/"):
        raise InvalidArgument(f"invalid mount {spec!r}: target must be an absolute path")
    source = str(fields.get("source") or fields.get("src") or "")
    ro = fields.get("readonly", fields.get("ro", fields.get("read_only", False)))
    readonly = ro is True or str(ro).lower() in ("1", "true")
    mount: dict[str, Any] = {"Type": kind, "Source": source, "Target": str(target),
                             "ReadOnly": readonly}
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid mount {spec!r}: bind source must be absolute")
        prop = str(fields.get("bind-propagation", fields.get("propagation", "")) or "")
        if prop and prop not in PROPAGATIONS:
            raise InvalidArgument(f"invalid mount {spec!r}: bad bind-propagation {prop!r}")
        mount["BindOptions"] = {"Propagation": prop} if prop else {}
    elif kind == "volume":
        if source:
            _validate_volume_name(source)
        mount["VolumeOptions"] = {"NoCopy": str(fields.get("volume-nocopy", "")).lower()
                                  in ("1", "true") or fields.get("volume-nocopy") is True}
    else:
        size = fields.get("tmpfs-size")
        mode = fields.get("tmpfs-mode")
        opts: dict[str, Any] = {}
        if size:
            opts["SizeBytes"] = _bytes(size, "tmpfs-size")
        if mode:
            opts["Mode"] = int(str(mode), 8)
        mount["TmpfsOptions"] = opts
    return mount


def restart_policy(value: Any) -> dict[str, Any]:
    from sdk.tasks.restart import RestartPolicy

    if value is None or value == "":
        return {"Name": "no", "MaximumRetryCount": 0}
    if isinstance(value, str):
        return RestartPolicy.parse(value).to_docker()
    name = value.get("Name", value.get("name", "no")) or "no"
    count = int(value.get("MaximumRetryCount", value.get("maximum_retry_count", 0)) or 0)
    text = f"{name}:{count}" if count else name
    return RestartPolicy.parse(text).to_docker()


def build_configs(image: str, image_config: Mapping[str, Any], command: Any,
                  kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate ``kwargs`` and merge them with the image's config, as Docker does."""
    unknown = set(kwargs) - CREATE_KWARGS
    if unknown:
        raise InvalidArgument(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    img = dict(image_config or {})
    g = kwargs.get

    cmd = _as_list(command, "command")
    entrypoint = _as_list(g("entrypoint"), "entrypoint")
    if entrypoint is not None:
        final_entry = entrypoint if entrypoint != [""] else None
        final_cmd = cmd
    else:
        final_entry = img.get("Entrypoint")
        final_cmd = cmd if cmd is not None else img.get("Cmd")
    if not final_entry and not final_cmd:
        raise InvalidArgument("no command specified")

    labels = dict(img.get("Labels") or {})
    labels.update(_labels(g("labels")))
    volumes = dict(img.get("Volumes") or {})
    binds: list[str] = []
    for item in _volume_items(g("volumes")):
        spec = parse_volume_spec(item)
        if not spec["Source"]:
            volumes[spec["Target"]] = {}
        else:
            binds.append(item)
    mounts = [parse_mount_spec(m) for m in (g("mounts") or [])]
    tmpfs = _tmpfs(g("tmpfs"))

    healthcheck = img.get("Healthcheck")
    if g("healthcheck") is not None:
        from sdk.tasks.health import HealthConfig

        hc = _docker_keys(g("healthcheck"))
        if hc and not hc.get("Test"):
            base = img.get("Healthcheck") or {}
            if not base.get("Test"):
                raise InvalidArgument("health check options need a command "
                                      "(--health-cmd) when the image has no HEALTHCHECK")
            hc = {**base, **hc, "Test": base["Test"]}
        healthcheck = HealthConfig.from_docker(hc).to_docker() if hc else None

    stop_signal = g("stop_signal") or img.get("StopSignal")
    if stop_signal:
        from sdk._internal.signals import parse_signal

        parse_signal(str(stop_signal))
    tty = bool(g("tty"))
    stdin_open = bool(g("stdin_open") or g("attach_stdin"))
    config: dict[str, Any] = {
        "Hostname": g("hostname") or "",
        "Domainname": g("domainname") or "",
        "User": g("user") if g("user") is not None else img.get("User", ""),
        "AttachStdin": stdin_open and not g("detach"),
        "AttachStdout": not g("detach"),
        "AttachStderr": not g("detach"),
        "ExposedPorts": dict(img.get("ExposedPorts") or {}) or None,
        "Tty": tty,
        "OpenStdin": stdin_open,
        "StdinOnce": stdin_open and not g("detach"),
        "Env": merge_env(img.get("Env") or [], _env_list(g("environment"))),
        "Cmd": final_cmd,
        "Image": image,
        "Volumes": volumes or None,
        "WorkingDir": g("working_dir") or img.get("WorkingDir", ""),
        "Entrypoint": final_entry,
        "OnBuild": None,
        "Labels": labels,
    }
    if stop_signal:
        config["StopSignal"] = str(stop_signal)
    if g("stop_timeout") is not None:
        config["StopTimeout"] = _int(g("stop_timeout"), "stop_timeout", -1)
    if healthcheck:
        config["Healthcheck"] = healthcheck
    if config["ExposedPorts"] is None:
        del config["ExposedPorts"]
    if g("hostname") and "." in str(g("hostname")) and not g("domainname"):
        config["Hostname"], _, config["Domainname"] = str(g("hostname")).partition(".")

    memory = _bytes(g("mem_limit"), "memory")
    if memory and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    memswap = _bytes(g("memswap_limit"), "memory-swap", allow_minus_one=True)
    if memswap > 0 and memory and memswap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if memswap and not memory and memswap != -1:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    nano = g("nano_cpus")
    if g("cpus") is not None:
        nano = units.parse_cpus(str(g("cpus")))
    nano = _int(nano, "cpus", 0)
    if nano and nano > (__import__("os").cpu_count() or 1) * 10**9:
        raise InvalidArgument(f"range of CPUs is from 0.01 to "
                              f"{__import__('os').cpu_count()}.00, as there are only "
                              f"{__import__('os').cpu_count()} CPUs available")
    blkio = _int(g("blkio_weight"), "blkio-weight", 0, 1000)
    if blkio and blkio < 10:
        raise InvalidArgument("invalid blkio-weight: must be between 10 and 1000")

    network_mode = _network_mode(g("network_mode") or g("network") or "bridge")
    if g("network_disabled"):
        network_mode = "none"
    log_config = g("log_config") or {"Type": "json-file", "Config": {}}
    if not isinstance(log_config, Mapping):
        raise InvalidArgument("log_config must be a mapping with Type and Config")
    log_config = {"Type": log_config.get("Type", log_config.get("type", "json-file")),
                  "Config": dict(log_config.get("Config", log_config.get("config", {})) or {})}
    if log_config["Type"] not in ("json-file", "none", "local"):
        raise InvalidArgument(f"logging driver {log_config['Type']!r} is not supported "
                              "(json-file, local or none)")
    if log_config["Type"] != "none":
        from sdk.tasks.logs import parse_log_opts

        parse_log_opts(log_config["Config"])      # bad --log-opt fails at create
    restart = restart_policy(g("restart_policy"))
    auto_remove = bool(g("auto_remove") or g("remove"))
    if auto_remove and restart["Name"] not in ("", "no"):
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    security_opt = list(g("security_opt") or [])
    for opt in security_opt:
        key = opt.split("=", 1)[0].split(":", 1)[0]
        if key not in ("no-new-privileges", "seccomp", "label", "apparmor", "systempaths"):
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    host: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": "",
        "LogConfig": log_config,
        "NetworkMode": network_mode,
        "PortBindings": {},
        "RestartPolicy": restart,
        "AutoRemove": auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": list(g("volumes_from") or []) or None,
        "CapAdd": _caps(g("cap_add"), "cap-add") or None,
        "CapDrop": _caps(g("cap_drop"), "cap-drop") or None,
        "CgroupnsMode": "private",
        "Dns": list(g("dns") or []),
        "DnsOptions": list(g("dns_opt") or []),
        "DnsSearch": list(g("dns_search") or []),
        "ExtraHosts": _extra_hosts(g("extra_hosts")),
        "GroupAdd": [str(x) for x in g("group_add") or []] or None,
        "IpcMode": g("ipc_mode") or "private",
        "Links": _links(g("links")),
        "OomScoreAdj": _int(g("oom_score_adj"), "oom-score-adj", -1000, 1000),
        "PidMode": g("pid_mode") or "",
        "Privileged": bool(g("privileged")),
        "PublishAllPorts": bool(g("publish_all_ports")),
        "ReadonlyRootfs": bool(g("read_only")),
        "SecurityOpt": security_opt or None,
        "Tmpfs": tmpfs or None,
        "UTSMode": g("uts_mode") or "",
        "ShmSize": _bytes(g("shm_size"), "shm-size") or 64 * 1024 * 1024,
        "Sysctls": dict(g("sysctls") or {}) or None,
        "CgroupParent": g("cgroup_parent") or "",
        "BlkioWeight": blkio,
        "BlkioDeviceReadBps": _throttle(g("device_read_bps"), "device-read-bps", False),
        "BlkioDeviceWriteBps": _throttle(g("device_write_bps"), "device-write-bps", False),
        "BlkioDeviceReadIOps": _throttle(g("device_read_iops"), "device-read-iops", True),
        "BlkioDeviceWriteIOps": _throttle(g("device_write_iops"), "device-write-iops", True),
        "CpuShares": _int(g("cpu_shares"), "cpu-shares", 0, 262144),
        "CpuPeriod": _int(g("cpu_period"), "cpu-period", 0, 1000000),
        "CpuQuota": _int(g("cpu_quota"), "cpu-quota", -1),
        "CpusetCpus": g("cpuset_cpus") or "",
        "CpusetMems": g("cpuset_mems") or "",
        "Devices": _devices(g("devices")),
        "Memory": memory,
        "MemoryReservation": _bytes(g("mem_reservation"), "memory-reservation"),
        "MemorySwap": memswap,
        "NanoCpus": nano,
        "OomKillDisable": bool(g("oom_kill_disable")),
        "Init": g("init"),
        "PidsLimit": _int(g("pids_limit"), "pids-limit") or None,
        "Ulimits": _ulimits(g("ulimits")) or None,
        "Mounts": mounts or None,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
    }
    if g("init"):
        raise InvalidArgument("--init is not supported yet: berth has no init binary to "
                              "inject; run your own init (e.g. tini) as the entrypoint")
    _network_options(g, config, host)
    return config, host


def _network_mode(mode: Any) -> str:
    mode = str(mode)
    if mode == "default":
        return "bridge"
    if mode.startswith("container:"):
        if not mode.split(":", 1)[1]:
            raise InvalidArgument("invalid network mode container: needs a container name")
        return mode
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", mode):
        raise InvalidArgument(f"invalid network {mode!r}: use bridge, none, host, "
                              "container:NAME or the name of a network")
    return mode


def _links(value: Any) -> list[str] | None:
    """``--link NAME[:ALIAS]`` (or docker-py's {name: alias}) -> ["name:alias", ...]."""
    if not value:
        return None
    items = [f"{k}:{v}" for k, v in value.items()] if isinstance(value, Mapping) else value
    out = []
    for item in items:
        name, _, alias = str(item).partition(":")
        name = name.lstrip("/")
        alias = (alias or name).rsplit("/", 1)[-1]
        if not name:
            raise InvalidArgument(f"invalid --link {item!r}: expected NAME[:ALIAS]")
        out.append(f"{name}:{alias}")
    return out


def _network_options(g: Any, config: dict[str, Any], host: dict[str, Any]) -> None:
    """Ports, addresses, aliases, DNS: validated here, applied at start (sdk/network)."""
    from sdk.network import ipam
    from sdk.network.ports import exposed, port_bindings

    mode = host["NetworkMode"]
    bindings = port_bindings(g("ports"))
    ports = dict(config.get("ExposedPorts") or {})
    ports.update(exposed(_as_list(g("expose"), "expose") or []
                         if isinstance(g("expose"), str) else g("expose") or []))
    for key in bindings:
        ports.setdefault(key, {})
    if ports:
        config["ExposedPorts"] = ports
    if mode.startswith("container:") or mode == "none":
        if bindings or host["PublishAllPorts"]:
            raise InvalidArgument(f"conflicting options: port publishing and the network "
                                  f"mode {mode}")
        if g("hostname") and mode.startswith("container:"):
            raise InvalidArgument("conflicting options: hostname and the network mode")
        if g("links"):
            raise InvalidArgument(f"conflicting options: --link and the network mode {mode}")
    if mode == "host":
        bindings = {}       # docker: "Published ports are discarded when using host network"
    host["PortBindings"] = bindings
    for server in host["Dns"]:
        ipam.parse_address(server, "--dns address")
    for entry in host.get("ExtraHosts") or []:
        addr = entry.partition(":")[2]
        if addr != "host-gateway":
            ipam.parse_address(addr, "--add-host address")
    ip = g("ip")
    aliases = [str(a) for a in g("network_aliases") or []]
    mac = g("mac_address")
    builtin = mode in ("bridge", "none", "host") or mode.startswith("container:")
    if ip:
        ipam.parse_address(str(ip), "--ip")
        if builtin:
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only")
    if aliases and builtin:
        raise InvalidArgument("network-scoped alias is supported only for containers in "
                              "user defined networks")
    if mac:
        import re

        if not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", str(mac)) or \
                int(str(mac)[:2], 16) & 1:
            raise InvalidArgument(f"invalid --mac-address {mac!r}: expected a unicast "
                                  "address like 02:42:ac:11:00:02")
        if mode in ("none", "host") or mode.startswith("container:"):
            raise InvalidArgument(f"conflicting options: mac-address and the network mode "
                                  f"{mode}")
    for key, flag in (("egress_rate", "--egress-rate"), ("ingress_rate", "--ingress-rate")):
        if g(key):
            from sdk.network.shaping import parse_rate

            if mode in ("none", "host") or mode.startswith("container:"):
                raise InvalidArgument(f"conflicting options: {flag} and the network mode "
                                      f"{mode}")
            host["EgressRate" if key == "egress_rate" else "IngressRate"] = \
                parse_rate(g(key), flag)
    if ip or aliases or mac or not builtin:
        host["_berth_endpoint"] = {"Network": mode, "IPv4Address": str(ip or ""),
                                   "Aliases": aliases, "MacAddress": str(mac or "").lower()}


def _docker_keys(hc: Any) -> dict[str, Any]:
    """docker-py's healthcheck dict uses snake_case keys; Docker's API uses CamelCase."""
    if not hc:
        return {}
    names = {"test": "Test", "interval": "Interval", "timeout": "Timeout",
             "retries": "Retries", "start_period": "StartPeriod",
             "start_interval": "StartInterval"}
    return {names.get(k, k): v for k, v in dict(hc).items()}


def _volume_items(volumes: Any) -> list[str]:
    if not volumes:
        return []
    if isinstance(volumes, str):
        return [volumes]
    if isinstance(volumes, Mapping):   # docker-py: {src: {"bind": dst, "mode": "ro"}}
        out = []
        for src, spec in volumes.items():
            if isinstance(spec, Mapping):
                mode = spec.get("mode", "rw")
                out.append(f"{src}:{spec['bind']}:{mode}")
            else:
                out.append(f"{src}:{spec}")
        return out
    return [str(v) for v in volumes]


def _tmpfs(value: Any) -> dict[str, str]:
    if not value:
        return {}
    items = value.items() if isinstance(value, Mapping) else \
        [(v.partition(":")[0], v.partition(":")[2]) for v in value]
    out = {}
    for path, opts in items:
        if not str(path).startswith("/"):
            raise InvalidArgument(f"invalid tmpfs mount {path!r}: path must be absolute")
        out[str(path)] = str(opts or "")
    return out


def _extra_hosts(value: Any) -> list[str] | None:
    if not value:
        return None
    items = [f"{k}:{v}" for k, v in value.items()] if isinstance(value, Mapping) else value
    out = []
    for item in items:
        name, sep, addr = str(item).partition(":")
        if "=" in str(item) and not sep:
            name, sep, addr = str(item).partition("=")
        if not sep or not name or not addr:
            raise InvalidArgument(f"invalid argument {item!r} for --add-host: expected "
                                  "host:ip")
        out.append(f"{name}:{addr}")
    return out


def _devices(value: Any) -> list[dict[str, str]]:
    out = []
    for item in value or []:
        parts = str(item).split(":")
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        if not host.startswith("/dev/") or set(perms) - set("rwm"):
            raise InvalidArgument(f"invalid device mapping {item!r}")
        out.append({"PathOnHost": host, "PathInContainer": inside,
                    "CgroupPermissions": perms})
    return out
