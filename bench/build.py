"""Builds side by side: berth vs docker (classic builder and BuildKit) vs buildah.

The same Dockerfile and context for every tool: a COPY of a tree of ~1,500 files, a
COPY of a 100 MB file, a RUN, ENV and CMD on the busybox test image (imported into
each tool from tests/fixtures' busybox tar).  Three builds per tool and round, the
tools interleaved round by round:

- cold: ``--no-cache``
- cached: the same build again, every step from the cache
- one file changed: one file of the tree rewritten, then a build with the cache (the
  tree COPY and every step after it run again)

berth runs twice: embedded (every ``berth build`` is a fresh interpreter that opens the
engine itself) and through a warm ``berth daemon`` of the same data root
(``BERTH_HOST``: the CLI hands the command to the daemon's pre-imported helper), which
is how dockerd is measured too.  ``--no-daemon`` leaves the second out.

    python bench/build.py [--files 1500] [--big-mb 100] [--runs 3] [--no-peers]

Every RUN uses ``--network none`` in every tool (the private dockerd runs with
``--bridge=none``, where BuildKit cannot run a RUN on the default network).  docker
runs against its own dockerd (data root, exec root, pidfile and socket in a temp dir);
buildah and podman against their own storage root.  Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import timed  # noqa: E402
from sdk._internal.testimages import busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"
DOCKERFILE = """\
FROM benchbase
COPY tree /srv/tree
COPY big.bin /srv/big.bin
RUN ls /srv/tree | wc -l > /srv/count
ENV APP_MODE=bench
CMD ["cat", "/srv/count"]
"""
KINDS = ("cold", "cached", "one file changed")


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


@dataclass
class Tool:
    """One builder: how to build with and without the cache, and its results."""

    name: str
    build: Callable[[bool], list[str]]        # nocache -> argv
    env: dict[str, str] | None = None
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})


class Dockerd:
    """A private dockerd: its own data root, exec root, pidfile and socket."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.sock = work / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.work / "dockerd.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(self.work / "data"), "--exec-root",
                 str(self.work / "exec"), "-H", f"unix://{self.sock}", "--pidfile",
                 str(self.work / "docker.pid"), "--bridge=none", "--iptables=false",
                 "--ip6tables=false", "--ip-masq=false", "--containerd-namespace",
                 "buildbench", "--containerd-plugins-namespace", "buildbench-plugins"],
                stdout=log, stderr=log, start_new_session=True)
        for _ in range(300):
            if subprocess.run(self.cli("version"), capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("dockerd did not start: " +
                           (self.work / "dockerd.log").read_text()[-1000:])

    def cli(self, *args: str) -> list[str]:
        return [DOCKER, "-H", f"unix://{self.sock}", *args]

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for sub in ("exec", "data"):
            subprocess.run(["umount", "-R", str(self.work / sub)], capture_output=True)


def berth_tool(work: Path, ctx: Path) -> Tool:
    env = dict(os.environ, BERTH_ROOT=str(work / "berth"),
               BERTH_CONFIG=str(work / "berth.json"))
    subprocess.run([BERTH, "import", "-c", 'CMD ["sh"]', str(busybox_tar()), "benchbase"],
                   env=env, check=True, capture_output=True)
    return Tool("berth build", lambda nc: [BERTH, "build", "-q", "--network", "none",
                                           *(["--no-cache"] if nc else []), "-t", "bench",
                                           str(ctx)], env)


class BerthDaemon:
    """``berth daemon`` on the embedded tool's data root, with its own socket."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.sock = work / "berthd.sock"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{self.sock}", "-G", ""],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(300):
            if self.sock.exists():
                return
            time.sleep(0.05)
        raise RuntimeError("berth daemon did not start")

    def tool(self, embedded: Tool) -> Tool:
        env = {k: v for k, v in embedded.env.items()  # type: ignore[union-attr]
               if k not in ("BERTH_ROOT", "BERTH_CONFIG")}
        env["BERTH_HOST"] = f"unix://{self.sock}"
        return Tool("berth build (warm daemon)", embedded.build, env)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def docker_tools(dockerd: Dockerd, ctx: Path) -> list[Tool]:
    subprocess.run(dockerd.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                               "benchbase:latest"), check=True, capture_output=True)

    def argv(nc: bool) -> list[str]:
        return dockerd.cli("build", "-q", "--network", "none",
                           *(["--no-cache"] if nc else []), "-t", "bench", str(ctx))

    tools = [Tool("docker build (classic)", argv, dict(os.environ, DOCKER_BUILDKIT="0"))]
    probe = subprocess.run(argv(True), env=dict(os.environ, DOCKER_BUILDKIT="1"),
                           capture_output=True)
    if probe.returncode == 0:
        tools.append(Tool("docker build (BuildKit)", argv,
                          dict(os.environ, DOCKER_BUILDKIT="1")))
    else:
        print(f"skipped BuildKit: {probe.stderr.decode()[-200:]}")
    return tools


def buildah_tool(work: Path, ctx: Path) -> Tool:
    storage = ["--root", str(work / "containers"), "--runroot", str(work / "run"),
               "--storage-driver", "overlay"]
    subprocess.run(["podman", *storage, "import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                    "localhost/benchbase:latest"], check=True, capture_output=True)
    return Tool("buildah bud", lambda nc: [
        "buildah", *storage, "bud", "-q", "--runtime", "runc", "--isolation", "oci",
        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none",
        "--pull-never", "--layers", *(["--no-cache"] if nc else []), "-t", "bench",
        str(ctx)])


def buildah_cleanup(work: Path) -> None:
    storage = ["--root", str(work / "containers"), "--runroot", str(work / "run"),
               "--storage-driver", "overlay"]
    subprocess.run(["buildah", *storage, "rm", "--all"], capture_output=True)
    subprocess.run(["podman", *storage, "system", "reset", "-f"], capture_output=True)
    subprocess.run(["umount", "-R", str(work / "containers")], capture_output=True)


def change_one_file(ctx: Path, n: int) -> None:
    (ctx / "tree" / "d00" / "f00000.txt").write_text(f"changed {n}\n")


def report(tools: list[Tool], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"builds: {args.files} files + {args.big_mb} MB + RUN + ENV + CMD, busybox "
          f"base, {args.runs} interleaved rounds, median seconds (min)")
    ref = next((t for t in tools if t.name == "docker build (classic)"), None)
    head = f"{'':28}" + "".join(f"{k:>24}" for k in KINDS)
    print(head)
    for tool in tools:
        cells = []
        for kind in KINDS:
            xs = tool.times[kind]
            cell = f"{statistics.median(xs):.3f} ({min(xs):.3f})"
            if ref is not None and tool is not ref:
                cell += f" {statistics.median(xs) / statistics.median(ref.times[kind]):.2f}x"
            cells.append(f"{cell:>24}")
        print(f"{tool.name:28}" + "".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="berth only")
    parser.add_argument("--no-daemon", action="store_true",
                        help="berth embedded only, not through a warm berth daemon")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-build-bench-"))
    dockerd = Dockerd(work / "docker")
    (work / "docker").mkdir()
    berth_env: dict[str, str] | None = None
    berthd: BerthDaemon | None = None
    try:
        ctx = work / "ctx"
        ctx.mkdir()
        make_context(ctx, args.files, args.big_mb)
        tools = [berth_tool(work, ctx)]
        berth_env = tools[0].env
        if not args.no_daemon:
            berthd = BerthDaemon(work, berth_env or {})
            berthd.start()
            tools.append(berthd.tool(tools[0]))
        if not args.no_peers:
            if shutil.which("dockerd"):
                dockerd.start()
                tools += docker_tools(dockerd, ctx)
            else:
                print("skipped docker: dockerd is not installed")
            if shutil.which("buildah") and shutil.which("podman"):
                tools.append(buildah_tool(work, ctx))
            else:
                print("skipped buildah: not installed")
        for tool in tools:      # warm-up: page cache, first-use costs
            timed(tool.build(False), tool.env)
        for n in range(args.runs):
            for tool in tools:
                tool.times["cold"].append(timed(tool.build(True), tool.env))
                tool.times["cached"].append(timed(tool.build(False), tool.env))
                change_one_file(ctx, len(tools) * n + tools.index(tool))
                tool.times["one file changed"].append(timed(tool.build(False), tool.env))
            print(f"round {n + 1}/{args.runs} done", flush=True)
        report(tools, args)
    finally:
        if berthd is not None:
            berthd.stop()
        if berth_env is not None:
            subprocess.run([BERTH, "system", "prune", "-a", "-f"], env=berth_env,
                           capture_output=True)
        dockerd.stop()
        if shutil.which("buildah"):
            buildah_cleanup(work)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
