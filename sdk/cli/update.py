"""``berth update``: docker's flags for changing limits and the restart policy in place."""

from __future__ import annotations

import sys
from typing import Any

from sdk.cli.flags import Flag, Spec, UsageError
from sdk.cli.runflags import RUN_FLAGS

# the run flags that `docker update` shares, as run defines them
SHARED = ("blkio-weight", "cpu-period", "cpu-quota", "cpu-shares", "cpus", "cpuset-cpus",
          "cpuset-mems", "memory", "memory-reservation", "memory-swap", "pids-limit",
          "restart")
UPDATE = Spec(
    "update", "update [OPTIONS] CONTAINER [CONTAINER...]",
    [f for f in RUN_FLAGS if f.name in SHARED] + [
        Flag("cpu-rt-period", kind="int", help="Limit the CPU real-time period (unsupported)"),
        Flag("cpu-rt-runtime", kind="int",
             help="Limit the CPU real-time runtime (unsupported)")],
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
    """Each container in turn, as docker does: failures are reported and the rest go on."""
    from sdk.cli.common import engine
    from sdk.cli.flags import parse
    from sdk.errors import SdkError

    opts, refs = parse(UPDATE, argv)
    changes = _changes(opts)
    eng = engine()
    failed = False
    for ref in refs:
        try:
            for warning in eng.tasks.update(ref, changes):
                print(f"WARNING: {warning}")
            print(ref)
        except SdkError as exc:
            print(f"Error response from daemon: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0
