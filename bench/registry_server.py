"""berth's registry server vs CNCF distribution (docker-registry), same machine, same run.

    python bench/registry_server.py [--size-mb 100] [--runs 3] [--berth-python PYTHON]

``--berth-python`` runs berth's server with another interpreter (the sdk from this tree on
PYTHONPATH), e.g. a venv with Debian 12's aiohttp 3.8.4, to compare aiohttp versions.

Both servers run as separate processes on 127.0.0.1 with a filesystem root under /tmp;
curl is the client for both (so the client costs the same).  Measures:
  * 100 MB monolithic blob upload (POST, then one PUT ?digest=; digest verified)
  * 100 MB blob GET with 1 client and with 8 parallel clients (aggregate throughput)
  * _catalog page latency with 10,000 repositories (berth only: distribution walks too)
Prints a markdown table (append it to docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BERTH = [str(Path(sys.executable).with_name("berth"))]
REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            requests.get(url + "/v2/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_berth(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*BERTH, "registry", "serve", "--root", str(root), "--addr",
                             f"127.0.0.1:{port}"], stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def start_distribution(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = work / "config.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
                   f"storage:\n  filesystem: {{rootdirectory: {root}}}\n"
                   f"  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([DISTRIBUTION, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc)
    return proc, url


def curl(*args: str) -> str:
    r = subprocess.run(["curl", "-s", "-f", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"curl {args}: exit {r.returncode} {r.stderr}")
    return r.stdout


def upload(url: str, repo: str, path: Path, digest: str) -> float:
    """POST for a session, then one PUT with the whole body and ?digest= (the spec's
    monolithic PUT; distribution 2.8 ignores a body sent with the POST itself)."""
    t0 = time.perf_counter()
    r = requests.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=10)
    loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else url + loc
    sep = "&" if "?" in loc else "?"
    curl("-X", "PUT", "--data-binary", f"@{path}", "-H",
         "Content-Type: application/octet-stream", "-o", "/dev/null",
         f"{loc}{sep}digest={digest}")
    elapsed = time.perf_counter() - t0
    if requests.head(f"{url}/v2/{repo}/blobs/{digest}", timeout=5).status_code != 200:
        raise RuntimeError(f"{url}: upload not visible")
    return elapsed


def download(url: str, repo: str, digest: str, clients: int) -> float:
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-s", "-f", "-o", "/dev/null",
                               f"{url}/v2/{repo}/blobs/{digest}"]) for _ in range(clients)]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"{url}: download failed")
    return time.perf_counter() - t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def catalog_latency(work: Path, repos: int = 10_000) -> float:
    root = work / "catalog-root"
    for i in range(repos):
        (root / "repositories" / f"team{i % 100}" / f"app{i}" / "_layers").mkdir(parents=True)
    proc, url = start_berth(root)
    try:
        s = requests.Session()
        s.get(f"{url}/v2/_catalog?n=1000", timeout=10)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            r = s.get(f"{url}/v2/_catalog?n=1000&last=team5/app5", timeout=10)
            times.append(time.perf_counter() - t0)
            assert len(r.json()["repositories"]) == 1000
        return statistics.median(times)
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--berth-python", help="interpreter for berth's server")
    args = parser.parse_args()
    if args.berth_python:
        BERTH[:] = [args.berth_python, "-m", "sdk.cli.main"]
    if not Path(DISTRIBUTION).exists():
        print("needs the docker-registry Debian package (CNCF distribution)")
        return 1
    size = args.size_mb * 1024 * 1024
    work = Path(tempfile.mkdtemp(prefix="berth-regbench-", dir="/tmp"))
    servers = {}
    try:
        servers["berth"] = start_berth(work / "berth")
        servers["distribution"] = start_distribution(work / "dist", work)
        results: dict[str, dict[str, list[float]]] = {n: {"put": [], "get1": [], "get8": []}
                                                       for n in servers}
        for run in range(args.runs):
            blob = work / f"blob{run}"
            data = os.urandom(size)
            blob.write_bytes(data)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            del data
            for name, (_, url) in servers.items():      # interleaved, same blob
                repo = f"bench/r{run}"
                results[name]["put"].append(upload(url, repo, blob, digest))
                download(url, repo, digest, 1)            # warm the page cache
                results[name]["get1"].append(download(url, repo, digest, 1))
                results[name]["get8"].append(download(url, repo, digest, 8))
            blob.unlink()
        mb = size / 1e6
        rows = []
        for metric, label, mult in (("put", f"{args.size_mb} MB monolithic PUT", 1),
                                    ("get1", f"{args.size_mb} MB GET, 1 client", 1),
                                    ("get8", f"{args.size_mb} MB GET, 8 clients", 8)):
            b = mb * mult / statistics.median(results["berth"][metric])
            d = mb * mult / statistics.median(results["distribution"][metric])
            rows.append(f"| {label} | {b:.0f} MB/s | {d:.0f} MB/s | {b / d:.2f}x |")
        for proc, _ in servers.values():
            stop(proc)
        servers.clear()
        cat = catalog_latency(work)
        python = args.berth_python or sys.executable
        aiohttp = subprocess.run([python, "-c", "import aiohttp; print(aiohttp.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"\nregistry server, median of {args.runs} runs, curl client, "
              f"{os.cpu_count()} CPUs, berth on aiohttp {aiohttp}\n")
        print("| operation | berth | distribution 2.8 | ratio |")
        print("|---|---|---|---|")
        print("\n".join(rows))
        print(f"| _catalog page (n=1000) of 10,000 repositories | {cat * 1000:.1f} ms | | |")
    finally:
        for proc, _ in servers.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
