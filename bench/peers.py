"""Install and start the peers benchmarks compare against (Debian packages only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PACKAGES = {"docker": "docker.io", "podman": "podman", "runc": "runc", "skopeo": "skopeo"}


def ensure_packages(*tools: str) -> dict[str, bool]:
    missing = [PACKAGES[t] for t in tools if shutil.which(t) is None or
               (t == "docker" and not Path("/usr/bin/docker").exists())]
    if missing:
        print(f"bench: installing {' '.join(missing)} from Debian", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL)
    return {t: shutil.which(t) is not None for t in tools}


def docker_bin() -> str:
    # the image ships a docker client in /usr/local/bin; use Debian's matching client
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def ensure_dockerd() -> subprocess.Popen[bytes] | None:
    """Start dockerd if it is not answering; returns the process we started (or None)."""
    docker = docker_bin()
    if subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return None
    if shutil.which("dockerd") is None:
        return None
    log = open("/tmp/berth-bench-dockerd.log", "ab")  # noqa: SIM115 - dockerd keeps it
    proc = subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false"], stdout=log,
                            stderr=log)
    for _ in range(150):
        if subprocess.run([docker, "info"], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.2)
    print("bench: dockerd did not come up; see /tmp/berth-bench-dockerd.log")
    proc.terminate()
    return None


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one command; a failure stops the benchmark with its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {proc.returncode}: {proc.stderr.decode()[-300:]}")
    return elapsed
