"""``berth update``: docker's flags for changing limits and the restart policy in place."""

from __future__ import annotations

from typing import Any

from sdk.cli.containers import _each
from sdk.cli.flags import Flag, Spec, UsageError

UPDATE = Spec(
    "update", "update [OPTIONS] CONTAINER [CONTAINER...]",
    [Flag("blkio-weight", kind="int", help="Block IO (relative weight), between 10 and 1000"),
     Flag("cpu-period", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) period"),
     Flag("cpu-quota", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) quota"),
     Flag("cpu-rt-period", kind="int", help="Limit the CPU real-time period (unsupported)"),
     Flag("cpu-rt-runtime", kind="int", help="Limit the CPU real-time runtime (unsupported)"),
     Flag("cpu-shares", "c", "int", help="CPU shares (relative weight)"),
     Flag("cpus", kind="str", help="Number of CPUs"),
     Flag("cpuset-cpus", kind="str", help="CPUs in which to allow execution (0-3, 0,1)"),
     Flag("cpuset-mems", kind="str", help="MEMs in which to allow execution (0-3, 0,1)"),
     Flag("memory", "m", "str", help="Memory limit"),
     Flag("memory-reservation", kind="str", help="Memory soft limit"),
     Flag("memory-swap", kind="str",
          help="Swap limit equal to memory plus swap: -1 to enable unlimited swap"),
     Flag("pids-limit", kind="int", help="Tune container pids limit (set -1 for unlimited)"),
     Flag("restart", kind="str", help="Restart policy to apply when a container exits")],
    min_args=1, summary="Update configuration of one or more containers")

# flag dest -> docker-py keyword of Container.update
KWARG = {"blkio_weight": "blkio_weight", "cpu_period": "cpu_period",
         "cpu_quota": "cpu_quota", "cpu_shares": "cpu_shares", "cpuset_cpus": "cpuset_cpus",
         "cpuset_mems": "cpuset_mems", "memory": "mem_limit",
         "memory_reservation": "mem_reservation", "memory_swap": "memswap_limit",
         "pids_limit": "pids_limit", "restart": "restart_policy"}


def _changes(opts: dict[str, Any]) -> dict[str, Any]:
    from sdk._internal import units
    from sdk.tasks.update import host_changes

    if opts["cpu_rt_period"] or opts["cpu_rt_runtime"]:
        raise UsageError("--cpu-rt-period and --cpu-rt-runtime are not supported "
                         "(berth does not manage real-time CPU groups)")
    kwargs = {kw: opts[dest] for dest, kw in KWARG.items() if opts.get(dest) is not None}
    if opts["cpus"] is not None:
        kwargs["nano_cpus"] = units.parse_cpus(opts["cpus"])
    if not kwargs:
        raise UsageError("you must provide one or more flags when using this command")
    return host_changes(kwargs)


def cmd_update(argv: list[str]) -> int:
    from sdk.cli.flags import parse

    opts, _ = parse(UPDATE, argv)
    changes = _changes(opts)

    def one(eng: Any, ref: str, _opts: dict[str, Any]) -> None:
        for warning in eng.tasks.update(ref, changes):
            print(f"WARNING: {warning}")

    return _each(argv, UPDATE, one)
