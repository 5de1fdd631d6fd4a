"""SELinux on the host: probe, and container labels with unique MCS categories."""

from __future__ import annotations

import os
import secrets


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def new_labels() -> tuple[str, str]:
    """(process label, mount label) with two random categories, like container-selinux."""
    a, b = sorted(secrets.SystemRandom().sample(range(1024), 2))
    level = f"s0:c{a},c{b}"
    return (f"system_u:system_r:container_t:{level}",
            f"system_u:object_r:container_file_t:{level}")
