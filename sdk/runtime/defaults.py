"""Docker's defaults as data (moby daemon/pkg/oci/defaults.go, caps/defaults.go, runc's
specconv AllowedDevices).  No I/O here: ``containers/specgen`` copies these into specs.
"""

from __future__ import annotations

from sdk.runtime.caps import ALL_CAPABILITIES, CAP_NUMBERS
from sdk.runtime.spec import Device, DeviceRule, Mount

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# moby caps/defaults.go DefaultCapabilities(): exactly these 14
DEFAULT_CAPABILITIES = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})

# A component holding "*" is a glob, expanded inside the container at start (one
# thermal_throttle directory per CPU).
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    "/sys/devices/system/cpu/cpu*/thermal_throttle",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3), Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7), Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9), Device("/dev/tty", "c", 5, 0),
)
DEFAULT_DEVICE_RULES = (
    DeviceRule(False, "a"),
    DeviceRule(True, "c", -1, -1, "m"),      # mknod of any node is allowed, opening is not
    DeviceRule(True, "b", -1, -1, "m"),
    DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(True, "c", 1, 5, "rwm"),
    DeviceRule(True, "c", 1, 7, "rwm"), DeviceRule(True, "c", 1, 8, "rwm"),
    DeviceRule(True, "c", 1, 9, "rwm"), DeviceRule(True, "c", 5, 0, "rwm"),
    DeviceRule(True, "c", 5, 1, "rwm"),      # /dev/console
    DeviceRule(True, "c", 136, -1, "rwm"),   # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),      # /dev/ptmx
    DeviceRule(True, "c", 10, 200, "rwm"),   # /dev/net/tun (Docker allows it)
    DeviceRule(False, "c", 10, 229, "rwm"),  # /dev/fuse
)
# (link target, name under /dev); runc setupDevSymlinks
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
                ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"))

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def default_mounts(shm_size: int = 0) -> tuple[Mount, ...]:
    """/proc /dev /dev/pts /sys /sys/fs/cgroup /dev/mqueue /dev/shm, in mount order."""
    shm = shm_size or DEFAULT_SHM_SIZE
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


__all__ = ["DEFAULT_PATH", "DEFAULT_CAPABILITIES", "ALL_CAPABILITIES", "CAP_NUMBERS",
           "MASKED_PATHS", "READONLY_PATHS", "DEFAULT_DEVICES", "DEFAULT_DEVICE_RULES",
           "DEV_SYMLINKS", "DEFAULT_SHM_SIZE", "default_mounts"]
