"""`berth build`: a COPY of ~1,500 files, a COPY of a 100 MB file, a RUN, ENV and CMD;
wall time uncached (``--no-cache``) and fully cached, through the CLI.

    python bench/build.py [--files 1500] [--big-mb 100] [--runs 3]

The base is the busybox test image (docs/benchmarks.md compares with docker when a
Debian base and dockerd are set up; see the issue for that run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import timed  # noqa: E402
from sdk._internal.testimages import busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))
DOCKERFILE = """\
FROM busybox
COPY tree /srv/tree
COPY big.bin /srv/big.bin
RUN ls /srv/tree | wc -l > /srv/count
ENV APP_MODE=bench
CMD ["cat", "/srv/count"]
"""


def make_context(ctx: Path, files: int, big_mb: int) -> None:
    tree = ctx / "tree"
    for i in range(files):
        d = tree / f"d{i % 30:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n" * (1 + i % 20))
    with open(ctx / "big.bin", "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(big_mb):
            f.write(chunk)
    (ctx / "Dockerfile").write_text(DOCKERFILE)



def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-build-bench-"))
    env = dict(os.environ, BERTH_ROOT=str(work / "root"), BERTH_CONFIG=str(work / "d.json"))
    try:
        ctx = work / "ctx"
        ctx.mkdir()
        make_context(ctx, args.files, args.big_mb)
        subprocess.run([BERTH, "import", "-c", 'CMD ["sh"]', str(busybox_tar()), "busybox"],
                       env=env, check=True, capture_output=True)
        uncached, cached = [], []
        for _ in range(args.runs):
            uncached.append(timed([BERTH, "build", "-q", "--no-cache", "-t", "bench",
                                   str(ctx)], env))
            cached.append(timed([BERTH, "build", "-q", "-t", "bench", str(ctx)], env))
        print(f"berth build, {args.files} files + {args.big_mb} MB + RUN "
              f"({args.runs} runs, median):")
        print(f"  uncached  {statistics.median(uncached):7.3f} s   "
              f"(min {min(uncached):.3f})")
        print(f"  cached    {statistics.median(cached):7.3f} s   (min {min(cached):.3f})")
    finally:
        subprocess.run([BERTH, "system", "prune", "-a", "-f"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
