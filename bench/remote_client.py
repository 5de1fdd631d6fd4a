"""The SDK's engine-service client (``sdk.remote``) against docker-py, on one daemon.

    python bench/remote_client.py [--runs 20]

Starts ``berth daemon`` on a private data root and socket, then times the same
operations through ``RemoteEngine`` and through ``docker.DockerClient`` (the peer),
interleaved run by run, plus each client's import time in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdk._internal.testimages import busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))


def start_daemon(root: Path, sock: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BERTH_ROOT=str(root / "root"), BERTH_CONFIG=str(root / "d.json"))
    subprocess.run([BERTH, "import", "-c", 'CMD ["sh"]', str(busybox_tar()),
                    "busybox:latest"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "--group", ""],
                            env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("bench: the daemon did not start")
        time.sleep(0.05)
    return proc


def import_time(module: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import docker

    from sdk.remote import RemoteEngine

    work = Path(tempfile.mkdtemp(prefix="berth-remote-bench-"))
    sock = work / "s.sock"
    proc = start_daemon(work, sock)
    ours = RemoteEngine(f"unix://{sock}")
    peer = docker.DockerClient(base_url=f"unix://{sock}", version="1.45")
    keep: list[Any] = []
    try:
        for i in range(20):
            keep.append(ours.containers.create("busybox", "true", name=f"idle{i}",
                                               network_mode="none"))
        web = ours.containers.run("busybox", ["sleep", "600"], detach=True,
                                  network_mode="none", stop_signal="KILL")
        web_peer = peer.containers.get(web.id)
        ops: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
            "import (fresh interpreter)": (lambda: import_time("sdk.remote"),
                                           lambda: import_time("docker")),
            "ping": (ours.ping, peer.ping),
            "images.get": (lambda: ours.images.get("busybox"),
                           lambda: peer.images.get("busybox")),
            "containers.list(all=True), 21 containers": (
                lambda: ours.containers.list(all=True),
                lambda: peer.containers.list(all=True)),
            "exec_run(true)": (lambda: web.exec_run(["true"]),
                               lambda: web_peer.exec_run(["true"])),
            "containers.run(true, remove=True)": (
                lambda: ours.containers.run("busybox", "true", remove=True,
                                            network_mode="none"),
                lambda: peer.containers.run("busybox", "true", remove=True,
                                            network_mode="none")),
        }
        samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ops}
        for a, b in ops.values():      # warm-up
            a()
            b()
        for run in range(args.runs):
            for name, (a, b) in ops.items():
                pair = [(a, samples[name][0]), (b, samples[name][1])]
                for fn, out in pair if run % 2 else pair[::-1]:   # who goes first alternates
                    t0 = time.perf_counter()
                    fn()
                    out.append(time.perf_counter() - t0)
        print(f"load average: {os.getloadavg()}")
        print("| operation | sdk.remote median ms | docker-py median ms | ratio |")
        print("|---|---:|---:|---:|")
        for name, (a_s, b_s) in samples.items():
            ma, mb = statistics.median(a_s) * 1000, statistics.median(b_s) * 1000
            print(f"| {name} | {ma:.1f} | {mb:.1f} | {ma / mb:.2f}x |")
    finally:
        peer.close()
        for c in ours.containers.list(all=True):
            c.remove(force=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        subprocess.run([sys.executable, "-c", "from sdk import Engine; "
                        f"Engine(root={str(work / 'root')!r}, "
                        f"config={str(work / 'd.json')!r}).repair()"], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
