"""Turn a container record into the ``RuntimeSpec`` the kernel layer starts.

Also writes the per-container /etc files (hostname, hosts, resolv.conf) that are
bind-mounted into the container from its own directory, never written through the
rootfs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sdk.containers.service import rootfs_from
from sdk.errors import InvalidArgument
from sdk.runtime import defaults
from sdk.runtime.spec import (
    Device,
    DeviceRule,
    Mount,
    NamespaceMode,
    Namespaces,
    Process,
    Resources,
    Rlimit,
    RuntimeSpec,
    ThrottleDevice,
)
from sdk.volumes.service import VolumeService

_T = TypeVar("_T")

HOSTS_BASE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
              "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
              "ff02::2\tip6-allrouters\n")


def hostname_of(doc: Mapping[str, Any]) -> str:
    cfg = doc["Config"]
    if cfg.get("Hostname"):
        return str(cfg["Hostname"])
    if doc["HostConfig"].get("NetworkMode") == "host":
        return socket.gethostname()
    return str(doc["Id"][:12])


def write_etc_files(doc: Mapping[str, Any], directory: Path,
                    own: Sequence[str] = (), peers: Sequence[tuple[str, Sequence[str]]] = (),
                    gateway: str = "") -> None:
    """hostname, hosts and resolv.conf for a start.  ``own``: the container's addresses
    (bridge networks); ``peers``: (address, names) it resolves (network members, links)."""
    hostname = hostname_of(doc)
    mode = doc["HostConfig"].get("NetworkMode", "bridge")
    (directory / "hostname").write_text(hostname + "\n")
    _replace_in_place(directory / "hosts", hosts_text(doc, own, peers, gateway))
    (directory / "resolv.conf").write_text(_resolv_conf(doc["HostConfig"], mode))


def hosts_text(doc: Mapping[str, Any], own: Sequence[str] = (),
               peers: Sequence[tuple[str, Sequence[str]]] = (), gateway: str = "") -> str:
    hostname = hostname_of(doc)
    mode = doc["HostConfig"].get("NetworkMode", "bridge")
    if mode == "host":
        try:
            hosts = Path("/etc/hosts").read_text()
        except OSError:
            hosts = HOSTS_BASE
    else:
        hosts = HOSTS_BASE
        fqdn = hostname + (("." + doc["Config"]["Domainname"])
                           if doc["Config"].get("Domainname") else "")
        names = f"{fqdn} {hostname}" if fqdn != hostname else hostname
        if own:
            hosts += "".join(f"{addr}\t{names}\n" for addr in own[:1])
        elif mode != "none":
            hosts += f"127.0.1.1\t{names}\n" if fqdn != hostname else ""
    for entry in doc["HostConfig"].get("ExtraHosts") or []:
        name, _, addr = entry.partition(":")
        if addr == "host-gateway":
            if not gateway:
                continue
            addr = gateway
        hosts += f"{addr}\t{name}\n"
    for addr, names in peers:
        hosts += f"{addr}\t{' '.join(names)}\n"
    return hosts


def write_hosts(doc: Mapping[str, Any], own: Sequence[str],
                peers: Sequence[tuple[str, Sequence[str]]], gateway: str = "") -> None:
    """Rewrite a running container's hosts file (network members came or went)."""
    _replace_in_place(Path(doc["HostsPath"]), hosts_text(doc, own, peers, gateway))


def _replace_in_place(path: Path, text: str) -> None:
    """Truncate and write the same inode: the file is bind-mounted into the container."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _resolv_conf(host: Mapping[str, Any], mode: str) -> str:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        text = ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    servers = [ln.split()[1] for ln in lines if ln.startswith("nameserver") and
               len(ln.split()) > 1]
    search = [w for ln in lines if ln.startswith("search") for w in ln.split()[1:]]
    options = [w for ln in lines if ln.startswith("options") for w in ln.split()[1:]]
    if mode != "host":   # loopback resolvers of the host are unreachable from a netns
        servers = [s for s in servers if not s.startswith("127.") and s != "::1"]
    servers = list(host.get("Dns") or servers)
    search = list(host.get("DnsSearch") or search)
    options = list(host.get("DnsOptions") or options)
    out = "".join(f"nameserver {s}\n" for s in servers)
    if search:
        out += "search " + " ".join(search) + "\n"
    if options:
        out += "options " + " ".join(options) + "\n"
    return out


def _capabilities(host: Mapping[str, Any]) -> frozenset[str]:
    if host.get("Privileged"):
        return frozenset(defaults.ALL_CAPABILITIES)
    from sdk.runtime.caps import normalize

    caps = set(defaults.DEFAULT_CAPABILITIES)
    adds = ["ALL" if c.upper() == "ALL" else normalize(c) for c in host.get("CapAdd") or []]
    drops = ["ALL" if c.upper() == "ALL" else normalize(c) for c in host.get("CapDrop") or []]
    if "ALL" in drops:
        caps.clear()
    else:
        caps -= set(drops)
    if "ALL" in adds:
        caps |= set(defaults.ALL_CAPABILITIES)
    else:
        caps |= set(adds)
    return frozenset(caps)


def _rlimits(host: Mapping[str, Any], daemon_ulimits: Mapping[str, Any]) -> tuple[Rlimit, ...]:
    merged: dict[str, Rlimit] = {}
    for name, spec in daemon_ulimits.items():
        merged[name] = Rlimit(name, int(spec.get("Soft", 0)), int(spec.get("Hard", 0)))
    for u in host.get("Ulimits") or []:
        merged[u["Name"]] = Rlimit(u["Name"], int(u["Soft"]), int(u["Hard"]))
    return tuple(merged.values())


def _throttles(items: Sequence[Mapping[str, Any]]) -> tuple[ThrottleDevice, ...]:
    out = []
    for item in items or []:
        try:
            st = os.stat(item["Path"])
        except OSError as exc:
            raise InvalidArgument(f"{item['Path']}: {exc.strerror}") from None
        out.append(ThrottleDevice(os.major(st.st_rdev), os.minor(st.st_rdev), int(item["Rate"])))
    return tuple(out)


def resources_of(host: Mapping[str, Any]) -> Resources:
    return Resources(
        memory=host.get("Memory") or 0, memory_swap=host.get("MemorySwap") or 0,
        memory_reservation=host.get("MemoryReservation") or 0,
        nano_cpus=host.get("NanoCpus") or 0, cpu_shares=host.get("CpuShares") or 0,
        cpu_period=host.get("CpuPeriod") or 0, cpu_quota=host.get("CpuQuota") or 0,
        cpuset_cpus=host.get("CpusetCpus") or "", cpuset_mems=host.get("CpusetMems") or "",
        pids_limit=host.get("PidsLimit") or 0, blkio_weight=host.get("BlkioWeight") or 0,
        device_read_bps=_throttles(host.get("BlkioDeviceReadBps") or []),
        device_write_bps=_throttles(host.get("BlkioDeviceWriteBps") or []),
        device_read_iops=_throttles(host.get("BlkioDeviceReadIOps") or []),
        device_write_iops=_throttles(host.get("BlkioDeviceWriteIOps") or []),
        oom_kill_disable=bool(host.get("OomKillDisable")))


def _user_devices(host: Mapping[str, Any]) -> tuple[list[Device], list[DeviceRule]]:
    devices, rules = [], []
    for d in host.get("Devices") or []:
        try:
            st = os.stat(d["PathOnHost"])
        except OSError:
            raise InvalidArgument(f"error gathering device information while adding custom "
                                  f"device \"{d['PathOnHost']}\": no such file or directory"
                                  ) from None
        import stat as stat_mod

        kind = "b" if stat_mod.S_ISBLK(st.st_mode) else "c"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        devices.append(Device(d["PathInContainer"], kind, major, minor,
                              stat_mod.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
        rules.append(DeviceRule(True, kind, major, minor, d.get("CgroupPermissions", "rwm")))
    return devices, rules


def build_spec(doc: Mapping[str, Any], *, volumes: VolumeService,
               join_net_pid: int | None = None, net_peer_dir: str | None = None,
               daemon_ulimits: Mapping[str, Any] | None = None,
               no_new_privileges_default: bool = False,
               link_env: Sequence[str] = ()) -> RuntimeSpec:
    cfg, host = doc["Config"], doc["HostConfig"]
    cdir = Path(doc["HostsPath"]).parent
    privileged = bool(host.get("Privileged"))
    mode = host.get("NetworkMode") or "default"
    if mode == "host":
        net = Namespaces(net=NamespaceMode.HOST)
    elif mode.startswith("container:"):
        if join_net_pid is None:
            raise InvalidArgument(f"network mode {mode}: the container is not running")
        net = Namespaces(net=NamespaceMode.JOIN, net_path=f"/proc/{join_net_pid}/ns/net")
    else:
        net = Namespaces()
    if host.get("IpcMode") == "host":
        net = _replace(net, ipc=NamespaceMode.HOST)
    if host.get("UTSMode") == "host":
        net = _replace(net, uts=NamespaceMode.HOST)
    if host.get("PidMode") == "host":
        net = _replace(net, pid=NamespaceMode.HOST)

    mounts: list[Mount] = list(defaults.default_mounts(shm_size=host.get("ShmSize") or 0))
    user_targets = {m["Destination"] for m in doc.get("Mounts") or []} | set(
        host.get("Tmpfs") or {})
    for target, name in (("/etc/resolv.conf", "resolv.conf"), ("/etc/hostname", "hostname"),
                         ("/etc/hosts", "hosts")):
        # container:NAME shares the other container's hosts and resolv.conf too
        src = Path(net_peer_dir) if net_peer_dir and name != "hostname" else cdir
        if target not in user_targets:
            mounts.append(Mount(target=target, kind="bind", source=str(src / name),
                                readonly=bool(host.get("ReadonlyRootfs"))))
    for m in doc.get("Mounts") or []:
        ro = not m.get("RW", True)
        if m["Type"] == "volume":
            mounts.append(volumes.runtime_mount(m["Name"], m["Destination"], ro))
        elif m["Type"] == "bind":
            prop = m.get("Propagation") or "rprivate"
            mounts.append(Mount(target=m["Destination"], kind="bind", source=m["Source"],
                                readonly=ro, propagation=prop))
        elif m["Type"] == "tmpfs":
            opts = m.get("_tmpfs") or {}
            data = []
            if opts.get("SizeBytes"):
                data.append(f"size={opts['SizeBytes']}")
            if opts.get("Mode"):
                data.append(f"mode={opts['Mode']:o}")
            mounts.append(Mount(target=m["Destination"], kind="tmpfs", source="tmpfs",
                                readonly=ro, options=tuple(data),
                                flags=("nosuid", "nodev", "noexec")))
    for target, opts in (host.get("Tmpfs") or {}).items():
        data = [o for o in opts.split(",") if o and o not in ("ro", "rw")]
        mounts.append(Mount(target=target, kind="tmpfs", source="tmpfs",
                            readonly="ro" in opts.split(","), options=tuple(data),
                            flags=("nosuid", "nodev", "noexec")))

    if doc.get("MountLabel"):      # SELinux: the container's tmpfs mounts carry its label
        context = f'context="{doc["MountLabel"]}"'
        mounts = [_replace(m, options=(*m.options, context)) if m.kind == "tmpfs" else m
                  for m in mounts]

    sec = host.get("SecurityOpt") or []
    nnp = no_new_privileges_default or any(
        o in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true")
        for o in sec)
    env = list(cfg.get("Env") or []) + list(link_env)
    keys = {e.partition("=")[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, "PATH=" + defaults.DEFAULT_PATH)
    hostname = hostname_of(doc)
    if "HOSTNAME" not in keys:
        env.insert(1, "HOSTNAME=" + hostname)
    if cfg.get("Tty") and "TERM" not in keys:
        env.append("TERM=xterm")
    args = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    process = Process(
        args=tuple(args), env=tuple(env), cwd=cfg.get("WorkingDir") or "/",
        user=cfg.get("User") or "", additional_groups=tuple(host.get("GroupAdd") or ()),
        terminal=bool(cfg.get("Tty")), capabilities=_capabilities(host),
        no_new_privileges=nnp, rlimits=_rlimits(host, daemon_ulimits or {}),
        oom_score_adj=host.get("OomScoreAdj") or None, seccomp=_seccomp_enabled(sec),
        selinux_label=doc.get("ProcessLabel") or "")
    user_devices, user_rules = _user_devices(host)
    return RuntimeSpec(
        id=doc["Id"], rootfs=rootfs_from(doc), process=process, hostname=hostname,
        domainname=cfg.get("Domainname") or "", namespaces=net, mounts=tuple(mounts),
        devices=tuple(defaults.DEFAULT_DEVICES) + tuple(user_devices),
        device_rules=tuple(defaults.DEFAULT_DEVICE_RULES) + tuple(user_rules)
        if not privileged else (DeviceRule(True),),
        masked_paths=() if privileged else tuple(defaults.MASKED_PATHS),
        readonly_paths=() if privileged else tuple(defaults.READONLY_PATHS),
        cgroup_parent=(host.get("CgroupParent") or "berth").strip("/"),
        resources=resources_of(host), privileged=privileged,
        sysctls=tuple((host.get("Sysctls") or {}).items()))


def _seccomp_enabled(security_opt: Sequence[str]) -> bool:
    for opt in security_opt:
        key, _, value = opt.replace("=", ":", 1).partition(":")
        if key == "seccomp":
            if value == "unconfined":
                return False
            raise InvalidArgument(f"--security-opt {opt}: custom seccomp profiles are not "
                                  "supported yet (use the default or seccomp=unconfined)")
    return True


def _replace(obj: _T, **changes: Any) -> _T:
    from dataclasses import replace

    return replace(obj, **changes)  # type: ignore[type-var]
