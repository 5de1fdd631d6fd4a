"""Pull and push through a local CNCF distribution registry: berth vs dockerd, podman
and skopeo (the floor).

    python bench/pull_push.py [--size-mb 300] [--layers 4] [--files 5000] [--runs 3]
                              [--no-docker] [--no-podman]

Builds an image of ``--layers`` gzip layers (half random, half text data, ``--files``
files in all), stores it in a fresh ``docker-registry`` on 127.0.0.1, then times, with
the tools interleaved in every run:

* pull: ``berth pull`` into an empty data root (download, verify, unpack) vs
  ``docker pull`` (a dockerd of our own, started per run on an empty data root) vs
  ``podman pull`` (an empty storage root per run) vs ``skopeo copy docker://...
  oci:DIR`` (download and verify only: the floor);
* push: each tool pushes the image it pulled to its own empty registry started for
  that run (so no tool can mount or skip a blob; skopeo and podman share a blob info
  cache): ``berth push``, ``docker push``, ``podman push`` and ``skopeo copy oci:DIR
  docker://...``.

Nothing is deleted until every run is done.  These machines' ext4 has no journal, and
there the inode allocator skips (and rescans, on every create) each inode freed in the
last 60-360 s: deleting one run's 5,000-file trees made the next run's creates cost
~0.4 ms each, for whichever tool happened to land in those block groups — seconds of
noise bigger than the differences measured.  ``--delete-between`` restores the old
behaviour (each tool's copy removed after its run) to see that cost.

Prints a markdown table of medians (copy it to docs/benchmarks.md) and the load average.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peers import timed  # noqa: E402
from sdk._internal.arch import goarch  # noqa: E402

BERTH = str(Path(sys.executable).with_name("berth"))
REGISTRY = "/usr/bin/docker-registry"
DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/local/bin/docker"
#: seconds a freshly started dockerd gets to finish its start-up before timing starts
_SETTLE = 5


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_layout(path: Path, size_mb: int, layers: int, files: int) -> None:
    """An OCI layout of ``layers`` gzip layers totalling about ``size_mb`` MB raw."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    per_layer = size_mb * 1_000_000 // layers
    per_file_count = max(files // layers, 1)
    descs, diff_ids = [], []
    rnd = open("/dev/urandom", "rb")  # noqa: SIM115
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\n"
    for n in range(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            size = per_layer // per_file_count
            for i in range(per_file_count):
                data = rnd.read(size // 2) + (words * (size // 2 // len(words) + 1))[:size // 2]
                info = tarfile.TarInfo(f"layer{n}/dir{i % 50}/file{i}")
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        blob = gzip.compress(raw, compresslevel=1, mtime=0)
        (path / "blobs" / "sha256" / _sha(blob)[7:]).write_bytes(blob)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": _sha(blob), "size": len(blob)})
        diff_ids.append(_sha(raw))
    rnd.close()
    config = json.dumps({"architecture": goarch(), "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _sha(config), "size": len(config)},
                           "layers": descs}).encode()
    for data in (config, manifest):
        (path / "blobs" / "sha256" / _sha(data)[7:]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _sha(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))


def start_registry(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    base.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"version": 0.1, "log": {"level": "error"},
           "storage": {"filesystem": {"rootdirectory": str(base / "data")}},
           "http": {"addr": f"127.0.0.1:{port}", "secret": "bench"}}
    (base / "config.yml").write_text(json.dumps(cfg))
    proc = subprocess.Popen([REGISTRY, "serve", str(base / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return proc, f"127.0.0.1:{port}"


def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)


class Dockerd:
    """Our own dockerd: data, exec root, pid file and socket under ``base``; no
    bridge, no iptables; stopped by PID."""

    def __init__(self, base: Path, insecure: str) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        base.mkdir(parents=True, exist_ok=True)
        self.log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [DOCKERD, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
             "--pidfile", str(base / "docker.pid"), "-H", f"unix://{self.sock}",
             "--insecure-registry", insecure, "--bridge=none", "--iptables=false",
             "--ip6tables=false", "--ip-masq=false",
             "--containerd-namespace", "pullbench",
             "--containerd-plugins-namespace", "pullbench-plugins"],
            stdout=self.log, stderr=self.log)
        for _ in range(300):
            if self.proc.poll() is not None:
                break
            if subprocess.run(self.cmd("version"), capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dockerd did not come up; see {base / 'dockerd.log'}")

    def cmd(self, *args: str) -> list[str]:
        return [DOCKER, "-H", f"unix://{self.sock}", *args]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        subprocess.run(["umount", "-R", str(self.base / "data")], capture_output=True)
        subprocess.run(["umount", "-R", str(self.base / "exec")], capture_output=True)


def _umount_below(path: Path) -> None:
    """Unmount what a peer left mounted under ``path`` (podman's overlay storage stays
    bind-mounted on itself after some ``system reset`` runs), deepest first."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True)


def _podman(root: Path) -> list[str]:
    return ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"),
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]


def _delete_run(env: dict[str, str], root: Path, out: Path, proot: Path,
                dockerd: Dockerd | None, refs: tuple[str, ...]) -> None:
    """``--delete-between``: remove what every tool pulled in this run."""
    subprocess.run([BERTH, "system", "prune", "-a", "-f"], env=env,
                   stdout=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    if dockerd is not None:
        for ref in refs:
            subprocess.run(dockerd.cmd("rmi", "-f", ref), capture_output=True)
    if shutil.which("podman"):
        subprocess.run([*_podman(proot), "system", "reset", "-f"], capture_output=True)
        _umount_below(proot)
        shutil.rmtree(proot, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--delete-between", action="store_true",
                    help="remove each tool's copy after each run (the kernel's cost of "
                         "reusing freed inodes then lands on the next run)")
    args = ap.parse_args()
    skopeo = shutil.which("skopeo")
    if not os.path.exists(REGISTRY) or not skopeo:
        print("bench: needs docker-registry and skopeo (apt-get install docker-registry "
              "skopeo)")
        return 1
    use_docker = not args.no_docker and os.path.exists(DOCKERD) and \
        shutil.which(DOCKER) is not None
    use_podman = not args.no_podman and shutil.which("podman") is not None
    work = Path(tempfile.mkdtemp(prefix="berth-bench-pull-"))
    procs: list[subprocess.Popen[bytes]] = []
    dockerd: Dockerd | None = None
    load_before = os.getloadavg()
    try:
        proc, host = start_registry(work / "registry")
        procs.append(proc)
        layout = work / "layout"
        build_layout(layout, args.size_mb, args.layers, args.files)
        image = f"{host}/bench/image:v1"
        src = f"docker://{image}"
        subprocess.run([skopeo, "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci:{layout}:v1", src], check=True)
        blob_mb = sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir()) / 1e6
        res: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            res.setdefault(key, []).append(value)

        for run in range(args.runs):
            root = work / f"root{run}"
            env = dict(os.environ, BERTH_ROOT=str(root), BERTH_CONFIG=str(work / "d.json"),
                       BERTH_AUTH_CONFIG=str(work / "auth.json"))
            out = work / f"oci{run}"
            proot = work / f"podman{run}"
            if use_docker and (dockerd is None or not args.delete_between):
                if dockerd is not None:
                    dockerd.stop()
                dockerd = Dockerd(work / f"docker{run}", host)
                time.sleep(_SETTLE)     # its start-up work must not land on the first pull
            # pull: every tool starts empty; the order rotates between runs
            pulls = {
                "berth": lambda env=env: timed([BERTH, "pull", "-q", image], env),
                "skopeo (floor)": lambda out=out: timed(
                    [skopeo, "copy", "--quiet", "--src-tls-verify=false", src,
                     f"oci:{out}:v1"]),
            }
            if dockerd is not None:
                pulls["docker"] = lambda d=dockerd: timed(d.cmd("pull", "-q", image))
            if use_podman:
                pulls["podman"] = lambda p=proot: timed(
                    [*_podman(p), "pull", "-q", "--tls-verify=false", image])
            names = list(pulls)
            for name in names[run % len(names):] + names[:run % len(names)]:
                subprocess.run(["sync"], check=False)
                add(f"pull: {name}", pulls[name]())
            # push: each tool to its own new registry (skopeo and podman share a blob
            # info cache and would mount each other's uploads from one registry)
            hosts = {}
            for tool in ("berth", "skopeo", "docker", "podman"):
                preg, hosts[tool] = start_registry(work / f"push{run}-{tool}")
                procs.append(preg)
            dest = {tool: f"{h}/pushed/image:v1" for tool, h in hosts.items()}
            pushes = {
                "berth": lambda env=env, t=dest["berth"]: timed(
                    [BERTH, "push", "-q", t], env),
                "skopeo": lambda out=out, t=dest["skopeo"]: timed(
                    [skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{out}:v1",
                     f"docker://{t}"]),
            }
            subprocess.run([BERTH, "tag", image, dest["berth"]],
                           env=env, check=True)
            if dockerd is not None:
                subprocess.run(dockerd.cmd("tag", image, dest["docker"]),
                               check=True)
                pushes["docker"] = lambda d=dockerd, t=dest["docker"]: \
                    timed(d.cmd("push", "-q", t))
            if use_podman:
                pushes["podman"] = lambda p=proot, t=dest["podman"]: \
                    timed([*_podman(p), "push", "-q", "--tls-verify=false", image, t])
            names = list(pushes)
            for name in names[run % len(names):] + names[:run % len(names)]:
                add(f"push: {name}", pushes[name]())
            if args.delete_between:
                _delete_run(env, root, out, proot, dockerd, (image, dest["docker"]))
            for preg in procs[1:]:
                preg.terminate()
                preg.wait(timeout=30)
            del procs[1:]
        load_after = os.getloadavg()
        print(f"\n{args.layers} layers, {args.files} files, {args.size_mb} MB raw, "
              f"{blob_mb:.0f} MB compressed; local docker-registry; {args.runs} run(s), "
              f"{os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, "
              f"{load_after[0]:.1f} after\n")
        print("| operation | median s | runs |\n|---|---:|---|")
        for k, v in res.items():
            print(f"| {k} | {statistics.median(v):.2f} | "
                  f"{', '.join(f'{x:.2f}' for x in v)} |")
        for op in ("pull", "push"):
            base = res.get(f"{op}: docker")
            if base:
                ratio = statistics.median(res[f"{op}: berth"]) / statistics.median(base)
                print(f"\nberth {op} / docker {op}: {ratio:.2f}x")
    finally:
        if dockerd is not None:
            dockerd.stop()
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        if use_podman:
            for proot in work.glob("podman*"):
                subprocess.run([*_podman(proot), "system", "reset", "-f"],
                               capture_output=True)
        _umount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
