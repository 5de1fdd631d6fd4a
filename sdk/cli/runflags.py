"""``run``/``create`` flags (docker's names) and their translation to SDK keyword args."""

from __future__ import annotations

from typing import Any

from sdk.cli.flags import Flag, Spec, UsageError

RUN_FLAGS = [
    Flag("detach", "d", help="Run container in background and print container ID"),
    Flag("interactive", "i", help="Keep STDIN open even if not attached"),
    Flag("tty", "t", help="Allocate a pseudo-TTY"),
    Flag("name", kind="str", help="Assign a name to the container"),
    Flag("rm", help="Automatically remove the container when it exits"),
    Flag("env", "e", "list", help="Set environment variables"),
    Flag("env-file", kind="list", help="Read in a file of environment variables"),
    Flag("workdir", "w", "str", help="Working directory inside the container"),
    Flag("user", "u", "str", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("hostname", "h", "str", help="Container host name"),
    Flag("domainname", kind="str", help="Container NIS domain name"),
    Flag("entrypoint", kind="str", help="Overwrite the default ENTRYPOINT of the image"),
    Flag("label", "l", "list", help="Set meta data on a container"),
    Flag("label-file", kind="list", help="Read in a line delimited file of labels"),
    Flag("volume", "v", "list", help="Bind mount a volume"),
    Flag("mount", kind="list", help="Attach a filesystem mount to the container"),
    Flag("tmpfs", kind="list", help="Mount a tmpfs directory"),
    Flag("volumes-from", kind="list", help="Mount volumes from the specified container(s)"),
    Flag("read-only", help="Mount the container's root filesystem as read only"),
    Flag("privileged", help="Give extended privileges to this container"),
    Flag("cap-add", kind="list", help="Add Linux capabilities"),
    Flag("cap-drop", kind="list", help="Drop Linux capabilities"),
    Flag("security-opt", kind="list", help="Security Options"),
    Flag("memory", "m", "str", help="Memory limit"),
    Flag("memory-swap", kind="str", help="Swap limit equal to memory plus swap: -1 unlimited"),
    Flag("memory-reservation", kind="str", help="Memory soft limit"),
    Flag("cpus", kind="str", help="Number of CPUs"),
    Flag("cpu-shares", "c", "int", help="CPU shares (relative weight)"),
    Flag("cpu-period", kind="int", help="Limit CPU CFS period"),
    Flag("cpu-quota", kind="int", help="Limit CPU CFS quota"),
    Flag("cpuset-cpus", kind="str", help="CPUs in which to allow execution (0-3, 0,1)"),
    Flag("cpuset-mems", kind="str", help="MEMs in which to allow execution (0-3, 0,1)"),
    Flag("pids-limit", kind="int", help="Tune container pids limit (-1 for unlimited)"),
    Flag("blkio-weight", kind="int", help="Block IO weight, between 10 and 1000"),
    Flag("device-read-bps", kind="list", help="Limit read rate from a device"),
    Flag("device-write-bps", kind="list", help="Limit write rate to a device"),
    Flag("device-read-iops", kind="list", help="Limit read rate (IO per second)"),
    Flag("device-write-iops", kind="list", help="Limit write rate (IO per second)"),
    Flag("device", kind="list", help="Add a host device to the container"),
    Flag("ulimit", kind="list", help="Ulimit options"),
    Flag("restart", kind="str", help="Restart policy to apply when a container exits"),
    Flag("health-cmd", kind="str", help="Command to run to check health"),
    Flag("health-interval", kind="str", help="Time between running the check"),
    Flag("health-timeout", kind="str", help="Maximum time to allow one check to run"),
    Flag("health-retries", kind="int", help="Consecutive failures needed to report unhealthy"),
    Flag("health-start-period", kind="str", help="Start period for the container"),
    Flag("health-start-interval", kind="str", help="Time between checks in the start period"),
    Flag("no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
    Flag("stop-signal", kind="str", help="Signal to stop the container"),
    Flag("stop-timeout", kind="int", help="Timeout (in seconds) to stop a container"),
    Flag("network", kind="str", help="Connect a container to a network"),
    Flag("net", kind="str", help="Alias of --network"),
    Flag("ip", kind="str", help="IPv4 address (e.g., 172.30.100.104)"),
    Flag("network-alias", kind="list", help="Add network-scoped alias for the container"),
    Flag("net-alias", kind="list", help="Alias of --network-alias"),
    Flag("mac-address", kind="str", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Flag("link", kind="list", help="Add link to another container"),
    Flag("egress-rate", kind="str", help="Limit the container's outgoing bandwidth "
         "(e.g. 10mbit)"),
    Flag("ingress-rate", kind="str", help="Limit the container's incoming bandwidth "
         "(e.g. 10mbit)"),
    Flag("dns", kind="list", help="Set custom DNS servers"),
    Flag("dns-search", kind="list", help="Set custom DNS search domains"),
    Flag("dns-option", kind="list", help="Set DNS options"),
    Flag("add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)"),
    Flag("publish", "p", "list", help="Publish a container's port(s) to the host"),
    Flag("publish-all", "P", help="Publish all exposed ports to random ports"),
    Flag("log-driver", kind="str", help="Logging driver for the container"),
    Flag("log-opt", kind="list", help="Log driver options"),
    Flag("sysctl", kind="list", help="Sysctl options"),
    Flag("shm-size", kind="str", help="Size of /dev/shm"),
    Flag("oom-kill-disable", help="Disable OOM Killer"),
    Flag("oom-score-adj", kind="int", help="Tune host's OOM preferences (-1000 to 1000)"),
    Flag("group-add", kind="list", help="Add additional groups to join"),
    Flag("cgroup-parent", kind="str", help="Optional parent cgroup for the container"),
    Flag("init", help="Run an init inside the container"),
    Flag("ipc", kind="str", help="IPC mode to use"),
    Flag("pid", kind="str", help="PID namespace to use"),
    Flag("uts", kind="str", help="UTS namespace to use"),
    Flag("pull", kind="str", default="missing", help='Pull image before running '
         '("always", "missing", "never")'),
    Flag("platform", kind="str", help="Set platform if server is multi-platform capable"),
    Flag("sig-proxy", default=True, help="Proxy received signals to the process"),
    Flag("attach", "a", "list", help="Attach to STDIN, STDOUT or STDERR"),
    Flag("detach-keys", kind="str", help="Override the key sequence for detaching"),
    Flag("cidfile", kind="str", help="Write the container ID to the file"),
    Flag("quiet", "q", help="Suppress the pull output"),
    Flag("expose", kind="list", help="Expose a port or a range of ports"),
]

RUN = Spec("run", "run [OPTIONS] IMAGE [COMMAND] [ARG...]", RUN_FLAGS, interspersed=False,
           min_args=1, summary="Create and run a new container from an image")
CREATE = Spec("create", "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
              [f for f in RUN_FLAGS if f.name not in ("detach", "rm", "sig-proxy",
                                                        "detach-keys")] +
              [Flag("rm", help="Automatically remove the container when it exits")],
              interspersed=False, min_args=1, summary="Create a new container")


def _read_env_files(paths: list[str]) -> list[str]:
    import os

    out = []
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise UsageError(f"open {path}: {exc.strerror.lower()}") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                value = os.environ.get(line)
                if value is not None:
                    out.append(f"{line}={value}")
                continue
            out.append(line)
    return out


def _expand_env(items: list[str]) -> list[str]:
    """``-e NAME`` takes the value from the client's environment, as docker does."""
    import os

    out = []
    for item in items:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def to_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """Translate parsed flags into ``containers.create`` keyword arguments."""
    from sdk._internal import units

    kw: dict[str, Any] = {}
    if opts.get("name"):
        kw["name"] = opts["name"]
    env = _read_env_files(opts.get("env_file") or []) + _expand_env(opts.get("env") or [])
    if env:
        kw["environment"] = env
    for src, dst in (("workdir", "working_dir"), ("user", "user"), ("hostname", "hostname"),
                     ("domainname", "domainname"), ("cpuset_cpus", "cpuset_cpus"),
                     ("cpuset_mems", "cpuset_mems"), ("cgroup_parent", "cgroup_parent"),
                     ("stop_signal", "stop_signal"), ("ipc", "ipc_mode"), ("pid", "pid_mode"),
                     ("uts", "uts_mode"), ("platform", "platform")):
        if opts.get(src) is not None:
            kw[dst] = opts[src]
    if opts.get("entrypoint") is not None:
        kw["entrypoint"] = [opts["entrypoint"]] if opts["entrypoint"] else [""]
    labels = list(opts.get("label") or [])
    for path in opts.get("label_file") or []:
        labels += [ln for ln in _read_env_files([path])]
    if labels:
        kw["labels"] = labels
    if opts.get("volume"):
        kw["volumes"] = opts["volume"]
    if opts.get("mount"):
        kw["mounts"] = opts["mount"]
    if opts.get("tmpfs"):
        kw["tmpfs"] = opts["tmpfs"]
    if opts.get("volumes_from"):
        kw["volumes_from"] = opts["volumes_from"]
    for flag in ("read_only", "privileged", "tty", "oom_kill_disable", "init"):
        if opts.get(flag):
            kw[flag] = True
    if opts.get("interactive"):
        kw["stdin_open"] = True
    for src, dst in (("cap_add", "cap_add"), ("cap_drop", "cap_drop"),
                     ("security_opt", "security_opt"), ("dns", "dns"),
                     ("dns_search", "dns_search"), ("dns_option", "dns_opt"),
                     ("add_host", "extra_hosts"), ("group_add", "group_add"),
                     ("device", "devices"), ("ulimit", "ulimits"),
                     ("device_read_bps", "device_read_bps"),
                     ("device_write_bps", "device_write_bps"),
                     ("device_read_iops", "device_read_iops"),
                     ("device_write_iops", "device_write_iops")):
        if opts.get(src):
            kw[dst] = opts[src]
    if opts.get("memory") is not None:
        kw["mem_limit"] = opts["memory"]
    if opts.get("memory_swap") is not None:
        kw["memswap_limit"] = opts["memory_swap"]
    if opts.get("memory_reservation") is not None:
        kw["mem_reservation"] = opts["memory_reservation"]
    if opts.get("shm_size") is not None:
        kw["shm_size"] = opts["shm_size"]
    if opts.get("cpus") is not None:
        kw["nano_cpus"] = units.parse_cpus(opts["cpus"])
    for src in ("cpu_shares", "cpu_period", "cpu_quota", "pids_limit", "blkio_weight",
                "oom_score_adj", "stop_timeout"):
        if opts.get(src) is not None:
            kw[src] = opts[src]
    if opts.get("restart"):
        kw["restart_policy"] = opts["restart"]
    hc = _healthcheck(opts)
    if hc is not None:
        kw["healthcheck"] = hc
    network = opts.get("network") or opts.get("net")
    if network:
        kw["network_mode"] = network
    if opts.get("publish"):
        kw["ports"] = opts["publish"]
    if opts.get("expose"):
        kw["expose"] = opts["expose"]
    if opts.get("ip"):
        kw["ip"] = opts["ip"]
    aliases = list(opts.get("network_alias") or []) + list(opts.get("net_alias") or [])
    if aliases:
        kw["network_aliases"] = aliases
    if opts.get("mac_address"):
        kw["mac_address"] = opts["mac_address"]
    if opts.get("link"):
        kw["links"] = opts["link"]
    for rate in ("egress_rate", "ingress_rate"):
        if opts.get(rate):
            kw[rate] = opts[rate]
    if opts.get("publish_all"):
        kw["publish_all_ports"] = True
    if opts.get("log_driver") or opts.get("log_opt"):
        cfg = {}
        for item in opts.get("log_opt") or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"invalid log opt {item!r}: expected key=value")
            cfg[key] = value
        kw["log_config"] = {"Type": opts.get("log_driver") or "json-file", "Config": cfg}
    if opts.get("sysctl"):
        sysctls = {}
        for item in opts["sysctl"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"invalid sysctl {item!r}: expected key=value")
            sysctls[key] = value
        kw["sysctls"] = sysctls
    if opts.get("rm"):
        kw["auto_remove"] = True
    return kw


def _healthcheck(opts: dict[str, Any]) -> dict[str, Any] | None:
    from sdk._internal.units import parse_duration

    if opts.get("no_healthcheck"):
        if any(opts.get(k) for k in ("health_cmd", "health_interval", "health_timeout",
                                     "health_retries", "health_start_period")):
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    keys = ("health_cmd", "health_interval", "health_timeout", "health_retries",
            "health_start_period", "health_start_interval")
    if not any(opts.get(k) is not None for k in keys):
        return None
    hc: dict[str, Any] = {}
    if opts.get("health_cmd"):
        hc["Test"] = ["CMD-SHELL", opts["health_cmd"]]
    for key, field in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                       ("health_start_period", "StartPeriod"),
                       ("health_start_interval", "StartInterval")):
        if opts.get(key) is not None:
            seconds = parse_duration(opts[key])
            if seconds < 0:
                raise UsageError(f"--{key.replace('_', '-')} cannot be negative")
            hc[field] = int(seconds * 1e9)
    if opts.get("health_retries") is not None:
        if opts["health_retries"] < 0:
            raise UsageError("--health-retries cannot be negative")
        hc["Retries"] = opts["health_retries"]
    return hc
