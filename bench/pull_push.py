"""Pull and push through a local CNCF distribution registry: berth vs skopeo (the floor).

    python bench/pull_push.py [--size-mb 300] [--layers 4] [--files 5000] [--runs 1]

Builds an image of ``--layers`` gzip layers (half random, half text data, ``--files``
files in all), stores it in a fresh ``docker-registry`` on 127.0.0.1, then times, with
the tools interleaved:

* pull: ``berth pull`` into an empty data root (download, verify, unpack) vs
  ``skopeo copy docker://... oci:DIR`` (download and verify only: the floor);
* push: ``berth push`` of the pulled image to an empty repository vs ``skopeo copy
  oci:DIR docker://...`` to another empty repository.

Prints a markdown table (append it to docs/benchmarks.md).
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"version": 0.1, "log": {"level": "error"},
           "storage": {"filesystem": {"rootdirectory": str(base / "data")}},
           "http": {"addr": f"127.0.0.1:{port}", "secret": "bench"}}
    (base / "config.yml").write_text(json.dumps(cfg))
    proc = subprocess.Popen([REGISTRY, "serve", str(base / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"



def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    skopeo = shutil.which("skopeo")
    if not os.path.exists(REGISTRY) or not skopeo:
        print("bench: needs docker-registry and skopeo (apt-get install docker-registry "
              "skopeo)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="berth-bench-pull-"))
    proc, host = start_registry(work)
    try:
        layout = work / "layout"
        build_layout(layout, args.size_mb, args.layers, args.files)
        src = f"docker://{host}/bench/image:v1"
        subprocess.run([skopeo, "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci:{layout}:v1", src], check=True)
        blob_mb = sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir()) / 1e6
        res: dict[str, list[float]] = {k: [] for k in ("berth pull", "skopeo pull (floor)",
                                                        "berth push", "skopeo push")}
        for run in range(args.runs):
            root = work / f"root{run}"
            env = dict(os.environ, BERTH_ROOT=str(root), BERTH_CONFIG=str(work / "d.json"),
                       BERTH_AUTH_CONFIG=str(work / "auth.json"))
            subprocess.run(["sync"], check=False)
            res["berth pull"].append(timed([BERTH, "pull", "-q", f"{host}/bench/image:v1"],
                                           env))
            out = work / f"oci{run}"
            res["skopeo pull (floor)"].append(timed(
                [skopeo, "copy", "--quiet", "--src-tls-verify=false", src, f"oci:{out}:v1"]))
            target = f"{host}/pushed/berth{run}:v1"
            subprocess.run([BERTH, "tag", f"{host}/bench/image:v1", target], env=env,
                           check=True)
            res["berth push"].append(timed([BERTH, "push", "-q", target], env))
            res["skopeo push"].append(timed(
                [skopeo, "copy", "--quiet", "--dest-tls-verify=false", f"oci:{out}:v1",
                 f"docker://{host}/pushed/skopeo{run}:v1"]))
            subprocess.run([BERTH, "system", "prune", "-a", "-f"], env=env,
                           stdout=subprocess.DEVNULL, check=False)
        print(f"\n{args.layers} layers, {args.files} files, {args.size_mb} MB raw, "
              f"{blob_mb:.0f} MB compressed; local docker-registry; {args.runs} run(s), "
              f"{os.cpu_count()} CPUs\n")
        print("| operation | median s |\n|---|---|")
        for k, v in res.items():
            print(f"| {k} | {statistics.median(v):.2f} |")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
