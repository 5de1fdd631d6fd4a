"""``docker update``: change a container's resource limits and restart policy in place.

The new values are checked against the whole resulting HostConfig (Docker's rules, e.g.
memory-swap >= memory, nano CPUs exclude a CFS quota) before anything changes; a running
container's cgroup is written next (the kernel has the last word, e.g. a memory limit
below current usage); the record is saved last, so a refused update changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sdk.errors import Conflict, InvalidArgument, SdkError

if TYPE_CHECKING:
    from sdk.tasks.service import TaskService

# docker-py's Container.update() keyword -> HostConfig key (the Engine API's body)
KWARGS: dict[str, str] = {
    "blkio_weight": "BlkioWeight", "cpu_period": "CpuPeriod", "cpu_quota": "CpuQuota",
    "cpu_shares": "CpuShares", "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems",
    "mem_limit": "Memory", "mem_reservation": "MemoryReservation",
    "memswap_limit": "MemorySwap", "nano_cpus": "NanoCpus", "pids_limit": "PidsLimit",
    "restart_policy": "RestartPolicy",
}
RESOURCE_KEYS = frozenset(KWARGS.values()) - {"RestartPolicy"}
# the kernel keeps these; nothing else in this list can be changed after create
UNSUPPORTED = ("KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime")


def host_changes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """docker-py keywords -> validated HostConfig values (InvalidArgument naming the flag).

    ``None`` means "leave as is", as in docker-py."""
    from sdk.containers import options

    given = {k: v for k, v in kwargs.items() if v is not None}
    unknown = sorted(set(given) - set(KWARGS))
    if unknown:
        raise InvalidArgument(f"update: unknown option(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key, value in given.items():
        host_key = KWARGS[key]
        if key in ("mem_limit", "mem_reservation"):
            out[host_key] = options.bytes_option(value, key.replace("_", "-"))
        elif key == "memswap_limit":
            out[host_key] = options.bytes_option(value, "memory-swap", allow_minus_one=True)
        elif key in ("cpuset_cpus", "cpuset_mems"):
            out[host_key] = str(value)
        elif key == "restart_policy":
            out[host_key] = options.restart_policy(value)
        else:
            out[host_key] = options.int_option(value, key.replace("_", "-"))
    return out


def update(tasks: TaskService, ref: str, changes: Mapping[str, Any]) -> list[str]:
    """Apply HostConfig ``changes`` (API shape) to container ``ref``; returns warnings."""
    from sdk.containers.specgen import resources_of
    from sdk.runtime import cgroups_limits as limits
    from sdk.runtime.spec import Resources
    from sdk.tasks.service import RUNNING_STATES

    bad = [k for k in changes if k in UNSUPPORTED and changes[k]]
    if bad:
        raise InvalidArgument(f"updating {', '.join(bad)} is not supported")
    unknown = sorted(set(changes) - RESOURCE_KEYS - {"RestartPolicy", *UNSUPPORTED})
    if unknown:
        raise InvalidArgument(f"cannot update {', '.join(unknown)}")
    doc = tasks.get(ref)
    name = doc["Name"].lstrip("/")
    host = dict(doc["HostConfig"])
    wanted = {k: v for k, v in changes.items() if k not in UNSUPPORTED}
    if doc["State"].get("Dead") or doc["_berth"].get("removing"):
        raise Conflict(f"Cannot update container {name}: container is marked for removal")
    if "RestartPolicy" in wanted:         # the API's raw value: docker's names only
        from sdk.containers.options import restart_policy

        wanted["RestartPolicy"] = restart_policy(wanted["RestartPolicy"])
    policy = wanted.get("RestartPolicy")
    if policy and (policy.get("Name") or "no") != "no" and host.get("AutoRemove"):
        raise Conflict(f"Cannot update container {name}: Restart policy cannot be updated "
                       "because AutoRemove is enabled for the container")
    merged = {**host, **wanted}
    swap = merged.get("MemorySwap") or 0
    if "Memory" in wanted and "MemorySwap" not in wanted and 0 < swap < merged["Memory"]:
        raise InvalidArgument(f"Cannot update container {name}: Memory limit should be "
                              "smaller than already set memoryswap limit, update the "
                              "memoryswap at the same time")
    resources = resources_of(merged)
    try:
        limits.validate(resources, initial=False)
    except InvalidArgument as exc:
        raise InvalidArgument(f"Cannot update container {name}: {exc}") from None
    changed_resources = {k: v for k, v in wanted.items() if k in RESOURCE_KEYS}
    if changed_resources and doc["State"]["Status"] in RUNNING_STATES:
        # only the fields asked for: Cgroup.update writes the non-zero ones (a negative
        # pids limit or memory-swap, "unlimited", is non-zero too)
        delta = resources_of(changed_resources)
        if delta.memory > 0 and "MemorySwap" not in wanted and not host.get("MemorySwap"):
            # the swap limit was docker's default (as much swap as memory): it follows
            from dataclasses import replace

            delta = replace(delta, memory_swap=2 * delta.memory)
        if delta != Resources():
            try:
                tasks.cgroup_of(doc).update(delta)
            except SdkError as exc:
                raise type(exc)(f"Cannot update container {name}: {exc}") from None

    def apply(d: dict[str, Any]) -> None:
        d["HostConfig"].update(wanted)

    tasks.store.modify(doc["Id"], apply)
    return []

