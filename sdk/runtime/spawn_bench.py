"""Start latency of ``runtime.spawn.start``: ``python -m sdk.runtime.spawn_bench [N]`` (root).

Prints the median / p90 / min of start() -> os.waitpid() for busybox ``true`` over N
runs (default 50) for a bare spec (namespaces + rootfs bind only), Docker's defaults
(mounts, devices, masked/read-only paths, 14 caps, seccomp), and Docker's defaults with
the host network (no netns to create).  Nothing is asserted: this is a measurement.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sdk._internal.testimages import busybox_rootfs
from sdk.runtime import defaults
from sdk.runtime.spawn import Stdio, start
from sdk.runtime.spec import NamespaceMode, Namespaces, Process, Rootfs, RuntimeSpec


def measure(spec: RuntimeSpec, runs: int) -> list[float]:
    start(spec, Stdio())   # warm-up: seccomp compile, cgroup layout, page cache
    os.wait()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        started = start(spec, Stdio())
        os.waitpid(started.pid, 0)
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def main(argv: list[str]) -> int:
    runs = int(argv[1]) if len(argv) > 1 else 50
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as tmp:
        root = busybox_rootfs(Path(tmp) / "rootfs")
        bare = RuntimeSpec(id="bench", rootfs=Rootfs(path=str(root)),
                           process=Process(args=("true",), seccomp=False,
                                           capabilities=defaults.DEFAULT_CAPABILITIES))
        docker = replace(bare, hostname="bench", mounts=defaults.default_mounts(),
                         devices=defaults.DEFAULT_DEVICES, masked_paths=defaults.MASKED_PATHS,
                         readonly_paths=defaults.READONLY_PATHS,
                         process=replace(bare.process, seccomp=True))
        hostnet = replace(docker, namespaces=Namespaces(net=NamespaceMode.HOST))
        for name, spec in (("bare", bare), ("docker defaults", docker),
                           ("docker defaults, host net", hostnet)):
            s = sorted(measure(spec, runs))
            print(f"{name:28s} median {statistics.median(s):6.2f} ms  "
                  f"p90 {s[int(len(s) * 0.9) - 1]:6.2f} ms  min {s[0]:6.2f} ms  (n={runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
