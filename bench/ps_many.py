"""`berth ps -a` with N containers (default 1000): wall time of the listing.

    python bench/ps_many.py [--count 1000]
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

from sdk._internal.testimages import busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-ps-"))
    env = dict(os.environ, BERTH_ROOT=str(work / "root"), BERTH_CONFIG=str(work / "d.json"))
    try:
        os.environ.update(BERTH_ROOT=env["BERTH_ROOT"], BERTH_CONFIG=env["BERTH_CONFIG"])
        from sdk import Engine

        eng = Engine.from_env()
        eng.images.import_image(str(busybox_tar()), repository="busybox")
        t0 = time.perf_counter()
        for i in range(args.count):
            eng.containers.create("busybox", ["true"], name=f"c{i}")
        created = time.perf_counter() - t0
        eng.close()
        runs = []
        for _ in range(10):
            t = time.perf_counter()
            out = subprocess.run([BERTH, "ps", "-a"], env=env, capture_output=True, check=True)
            runs.append(time.perf_counter() - t)
        lines = out.stdout.count(b"\n") - 1
        print(f"created {args.count} containers in {created:.1f} s "
              f"({created / args.count * 1000:.1f} ms each)")
        print(f"`berth ps -a` listing {lines} containers: median "
              f"{statistics.median(runs) * 1000:.0f} ms, best {min(runs) * 1000:.0f} ms")
        # the same listing through the warm daemon (BERTH_HOST)
        sock = work / "b.sock"
        daemon = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "-G", ""],
                                  env=env, stderr=subprocess.DEVNULL)
        try:
            while not sock.exists():
                time.sleep(0.05)
            warm_env = {k: v for k, v in env.items() if k not in ("BERTH_ROOT",
                                                                  "BERTH_CONFIG")}
            warm_env["BERTH_HOST"] = f"unix://{sock}"
            warm = []
            for _ in range(10):
                t = time.perf_counter()
                out = subprocess.run([BERTH, "ps", "-a"], env=warm_env, capture_output=True,
                                     check=True)
                warm.append(time.perf_counter() - t)
            rows = out.stdout.count(b"\n") - 1
            print(f"`berth ps -a` through the warm daemon: median "
                  f"{statistics.median(warm) * 1000:.0f} ms, best {min(warm) * 1000:.0f} ms "
                  f"({rows} rows)")
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
