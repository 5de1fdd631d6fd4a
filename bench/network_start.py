"""What bridge networking adds to a container start: berth bridge vs --network none.

    python bench/network_start.py [--runs 30]

Interleaves `berth run --rm IMAGE true` with the default bridge and with
`--network none` (CLI, whole process), and the same through the SDK in one process
(where interpreter start-up does not hide anything).  Prints a markdown table; the
difference of the medians is the network part of a start (target: <= 15 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import timed  # noqa: E402
from sdk._internal.testimages import busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))
PARENT = "berth-netbench"



def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-netbench-"))
    env = dict(os.environ, BERTH_ROOT=str(work / "root"), BERTH_CONFIG=str(work / "d.json"))
    from sdk import Engine

    eng = Engine(root=work / "root", config=work / "d.json")
    try:
        subprocess.run([BERTH, "import", str(busybox_tar()), "nb-busybox"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        # a private cgroup parent: another engine's repair on this host cleans "berth/*"
        run = [BERTH, "run", "--rm", "--cgroup-parent", PARENT]
        cli = {"bridge": [*run, "nb-busybox", "true"],
               "none": [*run, "--network", "none", "nb-busybox", "true"]}
        for cmd in cli.values():       # warm: page cache, bridge and rules created
            timed(cmd, env)
        times: dict[str, list[float]] = {f"CLI {k}": [] for k in cli}
        times.update({"SDK bridge": [], "SDK none": []})
        for _ in range(args.runs):
            for key, cmd in cli.items():
                times[f"CLI {key}"].append(timed(cmd, env))
            for mode in ("bridge", "none"):
                t0 = time.perf_counter()
                eng.containers.run("nb-busybox", ["true"], remove=True, network_mode=mode,
                                   cgroup_parent=PARENT)
                times[f"SDK {mode}"].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"| measure ({args.runs} runs, interleaved) | median ms |")
        print("|---|---|")
        for key, value in med.items():
            print(f"| {key} | {value:.1f} |")
        print(f"| network part, CLI (bridge - none) | {med['CLI bridge'] - med['CLI none']:.1f} |")
        print(f"| network part, SDK (bridge - none) | {med['SDK bridge'] - med['SDK none']:.1f} |")
    finally:
        eng.repair()
        eng.close()
        shutil.rmtree(work, ignore_errors=True)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            try:
                (hierarchy / PARENT).rmdir()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
