"""Container start latency: berth vs docker vs podman vs runc, interleaved, one run.

    python bench/start_latency.py [--runs 30]

Measures `run --rm --network none IMAGE true` wall time for each tool on the same
busybox image (made from Debian's busybox-static), `runc run` of a prepared bundle,
and berth's in-process SDK call.  Prints a markdown table (append it to
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import peers  # noqa: E402
from bench.peers import timed  # noqa: E402
from sdk._internal.testimages import busybox_rootfs, busybox_tar  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))
PODMAN = ["podman", "--runtime", "runc"]
PODMAN_RUN = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]



def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    have = peers.ensure_packages("docker", "podman", "runc")
    dockerd = peers.ensure_dockerd() if have["docker"] else None
    tar = busybox_tar()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    berth_env = dict(os.environ, BERTH_ROOT=str(work / "berth-root"),
                     BERTH_CONFIG=str(work / "daemon.json"))
    cmds: dict[str, list[str]] = {}
    notes: list[str] = []
    daemon: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run([BERTH, "import", str(tar), "bench-busybox"], env=berth_env,
                       check=True, stdout=subprocess.DEVNULL)
        cmds["berth run --rm --network none"] = [BERTH, "run", "--rm", "--network", "none",
                                                 "bench-busybox", "true"]
        docker = peers.docker_bin()
        if shutil.which(docker):   # the same docker CLI, talking to `berth daemon`
            sock = work / "berth.sock"
            daemon = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "-G", ""],
                                      env=berth_env, stderr=subprocess.DEVNULL)
            for _ in range(200):
                if sock.exists():
                    break
                time.sleep(0.05)
            cmds["docker CLI -> berth daemon, run --rm --network none"] = [
                docker, "-H", f"unix://{sock}", "run", "--rm", "--network", "none",
                "bench-busybox", "true"]
            # berth's own CLI handing the command to the warm daemon (BERTH_HOST)
            cmds["berth run --rm --network none (warm daemon)"] = [
                "env", "-u", "BERTH_ROOT", "-u", "BERTH_CONFIG", f"BERTH_HOST=unix://{sock}",
                BERTH, "run", "--rm", "--network", "none", "bench-busybox", "true"]
        if have["docker"] and subprocess.run([docker, "info"], capture_output=True
                                             ).returncode == 0:
            subprocess.run([docker, "import", str(tar), "bench-busybox"], check=True,
                           stdout=subprocess.DEVNULL)
            cmds["docker run --rm --network none"] = [docker, "run", "--rm", "--network",
                                                      "none", "bench-busybox", "true"]
        else:
            notes.append("docker: could not run here (no dockerd)")
        if have["podman"]:
            subprocess.run([*PODMAN, "import", str(tar), "bench-busybox"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cmds["podman run --rm --network none"] = [*PODMAN, "run", "--rm", *PODMAN_RUN,
                                                      "--network", "none", "bench-busybox",
                                                      "true"]
        if have["runc"]:
            bundle = work / "bundle"
            busybox_rootfs(bundle / "rootfs")
            subprocess.run(["runc", "spec"], cwd=bundle, check=True)
            spec = json.loads((bundle / "config.json").read_text())
            spec["process"]["args"] = ["true"]
            spec["process"]["terminal"] = False
            (bundle / "config.json").write_text(json.dumps(spec))
            cmds["runc run (prepared bundle)"] = ["runc", "run", "--bundle", str(bundle),
                                                  "bench-runc"]
        samples: dict[str, list[float]] = {k: [] for k in cmds}
        for cmd in cmds.values():   # warm-up
            timed(cmd, berth_env if cmd[0] == BERTH else None)
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                samples[name].append(timed(cmd, berth_env if cmd[0] == BERTH else None))
        # in-process SDK
        os.environ.update(BERTH_ROOT=berth_env["BERTH_ROOT"],
                          BERTH_CONFIG=berth_env["BERTH_CONFIG"])
        from sdk import Engine

        eng = Engine.from_env()
        eng.containers.run("bench-busybox", "true", remove=True, network_mode="none")
        sdk_samples = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            eng.containers.run("bench-busybox", "true", remove=True, network_mode="none")
            sdk_samples.append(time.perf_counter() - t0)
        samples["Engine().containers.run(..., remove=True) in-process"] = sdk_samples
        eng.close()
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=30)
        if "docker run --rm --network none" in cmds:
            subprocess.run([peers.docker_bin(), "rmi", "bench-busybox"], capture_output=True)
        if have.get("podman"):
            subprocess.run([*PODMAN, "rmi", "bench-busybox"], capture_output=True)
        peers.stop(dockerd)
        subprocess.run([BERTH, "rmi", "bench-busybox"], env=berth_env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    ref_docker = med.get("docker run --rm --network none")
    ref_runc = med.get("runc run (prepared bundle)")
    print(f"\n### Container start, `true` on busybox ({time.strftime('%Y-%m-%d')}, "
          f"{platform.node()}, {os.cpu_count()} CPUs, kernel {platform.release()}, "
          f"{args.runs} interleaved runs)\n")
    print("| command | median ms | p90 ms | vs docker | vs runc |")
    print("|---|---:|---:|---:|---:|")
    for name, values in samples.items():
        values = sorted(values)
        p90 = values[int(len(values) * 0.9) - 1]
        vs_d = f"{med[name] / ref_docker:.2f}x" if ref_docker else "n/a"
        vs_r = f"{med[name] / ref_runc:.2f}x" if ref_runc else "n/a"
        print(f"| {name} | {med[name] * 1000:.1f} | {p90 * 1000:.1f} | {vs_d} | {vs_r} |")
    for note in notes:
        print(f"\n{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
