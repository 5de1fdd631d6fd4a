"""What the kernel boundary needs to start a container: plain frozen data, no I/O.

``containers/`` turns a container record (Config + HostConfig) into a ``RuntimeSpec``;
``runtime/`` turns a ``RuntimeSpec`` into a running, isolated process.  Nothing in this
file touches the system, so specs can be built and compared in unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NamespaceMode(StrEnum):
    NEW = "new"      # unshare a fresh namespace
    HOST = "host"    # stay in the host's (caller's) namespace
    JOIN = "join"    # setns into ``Namespaces.*_path``


@dataclass(frozen=True, slots=True)
class Namespaces:
    """Which namespaces the container gets. mnt and pid are always new."""

    net: NamespaceMode = NamespaceMode.NEW
    net_path: str = ""           # /proc/PID/ns/net when net is JOIN
    ipc: NamespaceMode = NamespaceMode.NEW
    ipc_path: str = ""
    uts: NamespaceMode = NamespaceMode.NEW
    pid: NamespaceMode = NamespaceMode.NEW
    pid_path: str = ""
    cgroup: NamespaceMode = NamespaceMode.NEW


@dataclass(frozen=True, slots=True)
class Rootfs:
    """The container's root filesystem, mounted *inside* the container's mount namespace.

    overlay: ``lowerdirs`` (top first) + ``upperdir`` + ``workdir`` are mounted onto
    ``path``; the mount lives only in the container's mount namespace, so it can never
    leak on the host.  vfs (copy-based): ``path`` is a ready directory, lowerdirs empty.
    ``chdir`` is where relative lowerdir names resolve (short names keep the mount data
    under a page for 127 layers).
    """

    path: str
    lowerdirs: tuple[str, ...] = ()
    upperdir: str = ""
    workdir: str = ""
    chdir: str = ""
    readonly: bool = False
    mount_label: str = ""        # SELinux context= for the overlay, when enabled

    @property
    def is_overlay(self) -> bool:
        return bool(self.lowerdirs or self.upperdir)


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount inside the container.

    ``kind`` is "bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup".
    ``target`` is an absolute path inside the container; it is resolved inside the
    rootfs (symlinks cannot point it outside) and created when missing (a file when
    the bind source is a file).  ``options`` are mount data such as "size=64m".
    """

    target: str
    kind: str = "bind"
    source: str = ""
    readonly: bool = False
    options: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()   # nosuid, nodev, noexec, ...
    propagation: str = ""         # rprivate (default), rslave, rshared ...
    recursive: bool = True


@dataclass(frozen=True, slots=True)
class Device:
    """A device node to create in /dev and allow in the device cgroup."""

    path: str
    kind: str        # "c" or "b"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """A device cgroup rule: allow or deny ``kind major:minor access``; -1 = wildcard."""

    allow: bool
    kind: str = "a"
    major: int = -1
    minor: int = -1
    access: str = "rwm"


@dataclass(frozen=True, slots=True)
class Rlimit:
    name: str        # "nofile", "nproc", ... (RLIMIT_ without prefix, lower case)
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class ThrottleDevice:
    major: int
    minor: int
    rate: int


@dataclass(frozen=True, slots=True)
class Resources:
    """Docker's resource flags, already validated and in Docker's units."""

    memory: int = 0                  # bytes, 0 = unlimited
    memory_swap: int = 0             # bytes of memory+swap; 0 = default (2x memory); -1 = unlimited
    memory_reservation: int = 0
    nano_cpus: int = 0               # 1e9 = one CPU
    cpu_shares: int = 0              # 0 = default (1024)
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int = 0              # <= 0 unlimited
    blkio_weight: int = 0            # 10..1000, 0 = default
    device_read_bps: tuple[ThrottleDevice, ...] = ()
    device_write_bps: tuple[ThrottleDevice, ...] = ()
    device_read_iops: tuple[ThrottleDevice, ...] = ()
    device_write_iops: tuple[ThrottleDevice, ...] = ()
    oom_kill_disable: bool = False


@dataclass(frozen=True, slots=True)
class Process:
    """The process to exec inside the container.

    ``user`` is Docker's -u value ("", "name", "uid", "name:group", "uid:gid"); it is
    resolved inside the container by parsing the rootfs's /etc/passwd and /etc/group
    (never NSS).  ``args[0]`` is looked up in the container's PATH when it has no slash.
    """

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    additional_groups: tuple[str, ...] = ()
    terminal: bool = False
    capabilities: frozenset[str] = frozenset()   # names like "CAP_CHOWN"
    no_new_privileges: bool = False
    rlimits: tuple[Rlimit, ...] = ()
    oom_score_adj: int | None = None
    selinux_label: str = ""
    seccomp: bool = True      # Docker's default filter; off for --privileged/unconfined


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """Everything needed to start one container process."""

    id: str
    rootfs: Rootfs
    process: Process
    hostname: str = ""
    domainname: str = ""
    namespaces: Namespaces = field(default_factory=Namespaces)
    mounts: tuple[Mount, ...] = ()
    devices: tuple[Device, ...] = ()
    device_rules: tuple[DeviceRule, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    cgroup_parent: str = "berth"       # cgroup path is <parent>/<id> in each hierarchy
    resources: Resources = field(default_factory=Resources)
    privileged: bool = False
    sysctls: tuple[tuple[str, str], ...] = ()
