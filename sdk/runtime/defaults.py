"""Docker's defaults as data (moby daemon/pkg/oci/defaults.go, caps/defaults.go)."""

from __future__ import annotations

from sdk.runtime.spec import Device, DeviceRule, Mount

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})

# capability numbers (linux/capability.h)
CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
ALL_CAPABILITIES = frozenset(CAP_NUMBERS)

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3), Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7), Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9), Device("/dev/tty", "c", 5, 0),
)
DEFAULT_DEVICE_RULES = (
    DeviceRule(False, "a"),
    DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(True, "c", 1, 5, "rwm"),
    DeviceRule(True, "c", 1, 7, "rwm"), DeviceRule(True, "c", 1, 8, "rwm"),
    DeviceRule(True, "c", 1, 9, "rwm"), DeviceRule(True, "c", 5, 0, "rwm"),
    DeviceRule(True, "c", 5, 1, "rwm"),      # /dev/console
    DeviceRule(True, "c", 136, -1, "rwm"),   # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),      # /dev/ptmx
    DeviceRule(True, "c", 10, 200, "rwm"),   # /dev/net/tun (Docker allows it)
    DeviceRule(False, "c", 10, 229, "rwm"),  # /dev/fuse
)
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
                ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"))


def default_mounts(shm_size: int = 0) -> tuple[Mount, ...]:
    shm = shm_size or 64 * 1024 * 1024
    return (
        Mount("/proc", "proc", "proc", flags=("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", options=("mode=755", "size=65536k"),
              flags=("nosuid", "strictatime")),
        Mount("/dev/pts", "devpts", "devpts",
              options=("newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
              flags=("nosuid", "noexec")),
        Mount("/sys", "sysfs", "sysfs", readonly=True, flags=("nosuid", "noexec", "nodev")),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", readonly=True,
              flags=("nosuid", "noexec", "nodev")),
        Mount("/dev/mqueue", "mqueue", "mqueue", flags=("nosuid", "noexec", "nodev")),
        Mount("/dev/shm", "tmpfs", "shm", options=("mode=1777", f"size={shm}"),
              flags=("nosuid", "noexec", "nodev")),
    )
