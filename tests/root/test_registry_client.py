"""berth against a real CNCF distribution registry (Debian's docker-registry) and skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdk import Engine
from sdk._internal.arch import goarch
from sdk.errors import ImageNotFound, InvalidArgument, PermissionDenied, SdkError
from tests.root.conftest import Cli

REGISTRY_BIN = "/usr/bin/docker-registry"
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists(REGISTRY_BIN),
                                 reason="docker-registry (Debian package) not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str
    root: Path
    proc: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"


def start_registry(base: Path, htpasswd: str | None = None,
                   extra: dict | None = None) -> Registry:
    """A CNCF registry on 127.0.0.1; ``extra``: more top-level config sections."""
    port = free_port()
    data = base / "data"
    data.mkdir(parents=True)
    cfg = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": False}},
           "storage": {"filesystem": {"rootdirectory": str(data)}, "delete": {"enabled": True}},
           "http": {"addr": f"127.0.0.1:{port}", "secret": "berth-test-secret"}}
    if htpasswd:
        (base / "htpasswd").write_text(htpasswd)
        cfg["auth"] = {"htpasswd": {"realm": "berth-test", "path": str(base / "htpasswd")}}
    cfg.update(extra or {})
    (base / "config.yml").write_text(json.dumps(cfg))    # JSON is YAML
    log = open(base / "registry.log", "wb")              # noqa: SIM115 - closed by the proc
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(base / "config.yml")],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    reg = Registry(f"127.0.0.1:{port}", data, proc)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return reg
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    stop_registry(reg)
    raise RuntimeError("registry did not start: " + (base / "registry.log").read_text())


def blob_fetches(reg: Registry, digest: str) -> int:
    """Completed GETs of one blob, from the registry's access log."""
    log = (reg.root.parent / "registry.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if '"GET /v2/' in line and f'/blobs/{digest} HTTP' in line and '" 200 ' in line)


def stop_registry(reg: Registry) -> None:
    if reg.proc.poll() is None:
        reg.proc.kill()
    reg.proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch ~/.docker/config.json: credentials go to a temp file."""
    path = tmp_path / "auth.json"
    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(path))
    return path


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[Registry]:
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    reg = start_registry(tmp_path / "private", htpasswd=f"alice:{hashed}\n")
    yield reg
    stop_registry(reg)


def test_push_pull_run_roundtrip(engine: Engine, berth: Cli, registry: Registry,
                                 other_engine: Engine) -> None:
    target = f"{registry.host}/test/busybox:1"
    assert berth("tag", "busybox", target).returncode == 0
    first = berth("push", target)
    assert first.returncode == 0, first.stderr
    assert "Pushed" in first.stdout and "1: digest: sha256:" in first.stdout
    again = berth("push", target)
    assert "Layer already exists" in again.stdout, again.stdout
    pushed_digest = first.stdout.split("digest: ")[1].split()[0]

    events: list[dict] = []
    img = other_engine.images.pull(f"{registry.host}/test/busybox", tag="1",
                                   progress=events.append)
    statuses = [e["status"] for e in events]
    assert "Pulling fs layer" in statuses and "Pull complete" in statuses
    assert f"Digest: {pushed_digest}" in statuses
    assert img.id == engine.images.get("busybox").id         # same config, same ID
    assert img.attrs["RepoDigests"] == [f"{registry.host}/test/busybox@{pushed_digest}"]
    out = other_engine.containers.run(f"{registry.host}/test/busybox:1",
                                      ["echo", "pulled"], remove=True)
    assert out == b"pulled\n"
    # a second pull fetches nothing
    events.clear()
    other_engine.images.pull(f"{registry.host}/test/busybox", tag="1",
                             progress=events.append)
    assert not any(e["status"] == "Downloading" for e in events)
    assert events[-1]["status"].startswith("Status: Image is up to date")
    # pushing the pulled image to another repo mounts the blob and keeps the digest
    other_engine.images.get(f"{registry.host}/test/busybox:1").tag(
        f"{registry.host}/copy/busybox", "2")
    log = other_engine.images.push(f"{registry.host}/copy/busybox", "2")
    assert "Mounted from test/busybox" in log
    assert pushed_digest in log


def test_run_pulls_missing_image(engine: Engine, berth: Cli, registry: Registry,
                                 other_engine: Engine) -> None:
    target = f"{registry.host}/app:v1"
    engine.images.get("busybox").tag(target)
    engine.images.push(target)
    cli = Cli(other_engine)
    res = cli("run", "--rm", target, "echo", "auto")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "auto\n"
    assert f"Unable to find image '{target}' locally" in res.stderr
    assert "Pull complete" in res.stderr
    never = cli("run", "--rm", "--pull", "never", f"{registry.host}/app:v2", "true")
    assert never.returncode == 125 and "No such image" in never.stderr
    always = cli("create", "--pull", "always", target)
    assert always.returncode == 0 and "Image is up to date" in always.stderr
    cli("rm", always.stdout.strip())


def test_errors_are_one_clear_line(engine: Engine, berth: Cli, registry: Registry) -> None:
    res = berth("pull", f"{registry.host}/nothing/here:1")
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "not found on registry " + registry.host in err[0]
    dead = f"127.0.0.1:{free_port()}"
    res = berth("pull", f"{dead}/x:1")
    assert res.returncode == 1
    assert f"cannot reach registry {dead}" in res.stderr and len(
        res.stderr.strip().splitlines()) == 1
    res = berth("push", f"{registry.host}/not-tagged-locally:1")
    assert res.returncode == 1 and "No such image" in res.stderr
    with pytest.raises(InvalidArgument):
        engine.images.pull(f"{registry.host}/UPPER")


def test_htpasswd_login_push_pull(engine: Engine, berth: Cli, private_registry: Registry,
                                  other_engine: Engine, _auth_file: Path) -> None:
    host = private_registry.host
    target = f"{host}/team/busybox:latest"
    berth("tag", "busybox", target)
    denied = berth("push", target)
    assert denied.returncode == 1 and "denied" in denied.stderr and host in denied.stderr
    bad = berth("login", "-u", "alice", "--password-stdin", host, input=b"wrong\n")
    assert bad.returncode == 1 and "401" in bad.stderr
    assert not _auth_file.exists()
    ok = berth("login", "-u", "alice", "--password-stdin", host, input=b"s3cret\n")
    assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.stderr
    doc = json.loads(_auth_file.read_text())
    assert doc["auths"][host]["auth"] == "YWxpY2U6czNjcmV0"      # base64 alice:s3cret
    assert (_auth_file.stat().st_mode & 0o777) == 0o600
    assert berth("push", target).returncode == 0
    img = other_engine.images.pull(target)
    assert other_engine.containers.run(img.id, ["echo", "private"], remove=True) == \
        b"private\n"
    out = berth("logout", host)
    assert "Removing login credentials" in out.stdout
    with pytest.raises(PermissionDenied, match="berth login"):
        other_engine.images.pull(target)
    # SDK login
    assert other_engine.login("alice", "s3cret", registry=host)["Status"] == \
        "Login Succeeded"
    with pytest.raises(PermissionDenied):
        other_engine.login("alice", "nope", registry=host)


def test_search_catalog(engine: Engine, berth: Cli, registry: Registry) -> None:
    for name in ("alpha/one", "beta/two", "alpha/three"):
        engine.images.get("busybox").tag(f"{registry.host}/{name}", "1")
        engine.images.push(f"{registry.host}/{name}", "1")
    res = berth("search", f"{registry.host}/alpha")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert sorted(line.split()[0] for line in lines[1:]) == [
        f"{registry.host}/alpha/one", f"{registry.host}/alpha/three"]
    res = berth("search", "--limit", "1", "--format", "{{.Name}}", f"{registry.host}/")
    assert res.stdout.splitlines() == [f"{registry.host}/alpha/one"]
    assert berth("search", "--filter", "is-official=true",
                 f"{registry.host}/a").stdout.count("\n") == 1     # header only


# ---------------------------------------------------------------- crafted images

def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def _sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(reg: Registry, repo: str, blob: bytes,
             auth: tuple[str, str] | None = None) -> None:
    import requests

    r = requests.post(reg.url(f"/v2/{repo}/blobs/uploads/"), timeout=30, auth=auth)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    sep = "&" if "?" in location else "?"
    r = requests.put(f"{location}{sep}digest={_sha(blob)}", data=blob, timeout=30,
                     auth=auth, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text


def upload_image(reg: Registry, repo: str, tag: str, layers: list[bytes], *,
                 gzip_layers: bool = True, diff_ids: list[str] | None = None,
                 sizes: list[int] | None = None) -> str:
    """Push an image by raw HTTP (monolithic uploads); returns the manifest digest."""
    import requests

    blobs = [gzip.compress(t, mtime=0) if gzip_layers else t for t in layers]
    config = json.dumps({"architecture": goarch(), "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": diff_ids or [_sha(t) for t in layers]}}
                        ).encode()
    for blob in [*blobs, config]:
        put_blob(reg, repo, blob)
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip_layers else "")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": media, "digest": _sha(b),
                    "size": (sizes[i] if sizes else len(b))} for i, b in enumerate(blobs)],
    }).encode()
    r = requests.put(reg.url(f"/v2/{repo}/manifests/{tag}"), data=manifest, timeout=30,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    return _sha(manifest)


def _no_image(eng: Engine, ref: str) -> None:
    with pytest.raises(ImageNotFound):
        eng.images.get(ref)


def test_crafted_layers_are_refused_or_confined(registry: Registry, other_engine: Engine,
                                                tmp_path: Path) -> None:
    victim = tmp_path / "host-victim"
    victim.mkdir()
    escape_dir = f"../../../../../../..{victim}"
    cases = {
        "dotdot": _tar([_file(f"{escape_dir}/dotdot", b"pwned")]),
        "symlink": _tar([_sym("esc", str(victim)), _file("esc/symlink", b"pwned")]),
        "relsymlink": _tar([_sym("up", "../../../../../../../.."),
                            _file(f"up{victim}/relsymlink", b"pwned")]),
    }
    for name, layer in cases.items():
        upload_image(registry, f"evil/{name}", "1", [layer])
        with pytest.raises(SdkError):
            other_engine.images.pull(f"{registry.host}/evil/{name}:1")
        _no_image(other_engine, f"{registry.host}/evil/{name}:1")
    # an absolute path is confined to the layer (Docker's rule), never the host's /
    upload_image(registry, "evil/abs", "1", [_tar([_file(f"{victim}/abs", b"inside")])])
    img = other_engine.images.pull(f"{registry.host}/evil/abs:1")
    assert list(victim.iterdir()) == []
    layer_dir = other_engine.layer_store.lower_dirs(
        other_engine.image_store.top_layer(img.id))[0]
    assert (layer_dir / str(victim).lstrip("/") / "abs").read_bytes() == b"inside"
    # a symlink escape split over two layers is confined too
    upload_image(registry, "evil/twolayers", "1",
                 [_tar([_sym("link", str(victim))]), _tar([_file("link/two", b"pwned")])])
    try:
        other_engine.images.pull(f"{registry.host}/evil/twolayers:1")
    except SdkError:
        pass
    assert list(victim.iterdir()) == []


def test_digest_size_and_diffid_mismatch_commit_nothing(registry: Registry,
                                                         other_engine: Engine) -> None:
    layer = _tar([_file("hello", b"hi")])
    other = _tar([_file("other", b"no")])
    upload_image(registry, "bad/diffid", "1", [layer], diff_ids=[_sha(other)])
    with pytest.raises(InvalidArgument, match="DiffID mismatch"):
        other_engine.images.pull(f"{registry.host}/bad/diffid:1")
    _no_image(other_engine, f"{registry.host}/bad/diffid:1")
    assert other_engine.db.query("SELECT * FROM layers") == []
    # the manifest claims more bytes than the blob has (streamed, then already stored)
    for name, data in (("fresh", _tar([_file("fresh", b"x" * 5000)])), ("stored", layer)):
        size = len(gzip.compress(data, mtime=0)) + 7
        upload_image(registry, f"bad/{name}", "1", [data], sizes=[size])
        with pytest.raises(InvalidArgument, match="size mismatch"):
            other_engine.images.pull(f"{registry.host}/bad/{name}:1")
        _no_image(other_engine, f"{registry.host}/bad/{name}:1")
    assert not list((other_engine.content.root / "ingest").glob("*"))


def test_zstd_and_uncompressed_layers(registry: Registry, other_engine: Engine) -> None:
    zstandard = pytest.importorskip("zstandard")
    base = _tar([_file("bin/marker", b"plain")])
    top = _tar([_file("zstd-file", b"zstd")])
    upload_image(registry, "fmt/plain", "1", [base], gzip_layers=False)
    img = other_engine.images.pull(f"{registry.host}/fmt/plain:1")
    assert len(img.attrs["RootFS"]["Layers"]) == 1
    # a zstd layer, uploaded by hand
    import requests

    zblob = zstandard.ZstdCompressor().compress(top)
    config = json.dumps({"architecture": goarch(), "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [_sha(top)]}}).encode()
    for blob in (zblob, config):
        put_blob(registry, "fmt/zstd", blob)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _sha(config), "size": len(config)},
                           "layers": [{"mediaType":
                                       "application/vnd.oci.image.layer.v1.tar+zstd",
                                       "digest": _sha(zblob), "size": len(zblob)}]}).encode()
    r = requests.put(registry.url("/v2/fmt/zstd/manifests/1"), data=manifest, timeout=30,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    img = other_engine.images.pull(f"{registry.host}/fmt/zstd:1")
    chain = other_engine.image_store.layer_chain(img.id)
    assert chain[0].blob_digest == _sha(zblob)
    assert chain[0].media_type.endswith("+zstd")


def test_concurrent_pulls_both_succeed(engine: Engine, berth: Cli, registry: Registry,
                                       other_engine: Engine) -> None:
    target = f"{registry.host}/race/busybox:1"
    engine.images.get("busybox").tag(target)
    engine.images.push(target)
    cli = Cli(other_engine)
    from tests.root.conftest import BERTH

    procs = [subprocess.Popen([BERTH, "pull", "-q", target], env=cli.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert other_engine.containers.run(target, ["true"], remove=True) == b""
    for layer in other_engine.image_store.layer_chain(other_engine.images.get(target).id):
        assert blob_fetches(registry, layer.blob_digest) == 1, layer
    assert not list(other_engine.layer_store.base.glob(".tmp-*"))


def test_concurrent_pulls_of_a_multi_layer_image(registry: Registry, other_engine: Engine
                                                 ) -> None:
    """Two processes, four layers unpacked in parallel in each: every blob is fetched
    once, both succeed, one copy of each layer is kept."""
    layers = [_tar([_file(f"l{n}/f{i}", os.urandom(20_000)) for i in range(200)])
              for n in range(4)]
    upload_image(registry, "race/multi", "1", layers)
    target = f"{registry.host}/race/multi:1"
    env = Cli(other_engine).env
    from tests.root.conftest import BERTH

    procs = [subprocess.Popen([BERTH, "pull", "-q", target], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    chain = other_engine.image_store.layer_chain(other_engine.images.get(target).id)
    assert len(chain) == 4
    for layer in chain:
        assert blob_fetches(registry, layer.blob_digest) == 1, layer
    diffs = [p for p in other_engine.layer_store.base.iterdir() if len(p.name) == 64]
    assert len(diffs) == 4
    assert not list(other_engine.layer_store.base.glob(".tmp-*"))


# ---------------------------------------------------------------- skopeo interop

SKOPEO = shutil.which("skopeo")


def _oci_layout(path: Path, rootfs_tar: Path) -> str:
    """A one-layer gzip OCI layout of ``rootfs_tar``; returns the manifest digest."""
    (path / "blobs" / "sha256").mkdir(parents=True)
    raw = rootfs_tar.read_bytes()
    blob = gzip.compress(raw, compresslevel=1, mtime=0)
    config = json.dumps({"architecture": goarch(), "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(raw)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(blob), "size": len(blob)}]}).encode()
    for data in (blob, config, manifest):
        (path / "blobs" / "sha256" / _sha(data)[7:]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _sha(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    return _sha(manifest)


@pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed")
def test_skopeo_interop(engine: Engine, berth: Cli, registry: Registry, other_engine: Engine,
                        tmp_path: Path, busybox_tar: Path) -> None:
    # skopeo pushes, berth pulls and runs
    layout = tmp_path / "layout"
    digest = _oci_layout(layout, busybox_tar)
    target = f"{registry.host}/skopeo/busybox:v1"
    subprocess.run([SKOPEO, "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci:{layout}:v1", f"docker://{target}"], check=True, timeout=60)
    img = other_engine.images.pull(target)
    assert img.attrs["RepoDigests"] == [f"{registry.host}/skopeo/busybox@{digest}"]
    assert other_engine.containers.run(target, ["echo", "from-skopeo"], remove=True) == \
        b"from-skopeo\n"
    # berth pushes (its own import, and the pulled one), skopeo copies, digests match
    for source, pushed in (("busybox", f"{registry.host}/berth/busybox:v2"),):
        berth("tag", source, pushed)
        res = berth("push", pushed)
        assert res.returncode == 0, res.stderr
        pushed_digest = res.stdout.split("digest: ")[1].split()[0]
        out = tmp_path / "copied"
        subprocess.run([SKOPEO, "copy", "--quiet", "--src-tls-verify=false",
                        "--dest-oci-accept-uncompressed-layers",
                        f"docker://{pushed}", f"oci:{out}:x"], check=True, timeout=60)
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == pushed_digest
    again = f"{registry.host}/berth/repushed:v3"
    other_engine.images.get(target).tag(again)
    log = other_engine.images.push(again)
    assert digest in log                   # the pulled manifest went back byte-exact


def test_chunked_push_and_docker_hub_mirror(engine: Engine, busybox: str, registry: Registry,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sdk.distribution.push as push_mod
    import sdk.distribution.transport as transport

    monkeypatch.setattr(push_mod, "CHUNK", 256 << 10)          # force PATCH chunks
    target = f"{registry.host}/library/mirrored:1"
    engine.images.get(busybox).tag(target)
    log = engine.images.push(target)
    assert log.count('"Pushing"') > 2                          # several chunks
    # docker.io pulls try registry-mirrors first; the Hub itself is never contacted
    monkeypatch.setattr(transport, "HUB_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    cfg = tmp_path / "mirror-daemon.json"
    cfg.write_text(json.dumps({"registry-mirrors": [f"http://{registry.host}"]}))
    eng = Engine(root=tmp_path / "mirror-root", config=cfg)
    try:
        pulled = eng.images.pull("mirrored", tag="1")
        assert pulled.tags == ["mirrored:1"]
        with pytest.raises(SdkError, match="cannot reach registry docker.io"):
            eng.images.pull("not-on-the-mirror")                # falls back to the "Hub"
    finally:
        eng.repair()
        eng.close()


def test_kill_during_pull_leaves_no_partial_image(registry: Registry, other_engine: Engine
                                                  ) -> None:
    big = _tar([_file(f"f{i}", os.urandom(1 << 20)) for i in range(24)])
    upload_image(registry, "big/image", "1", [big, _tar([_file("top", b"t")])],
                 gzip_layers=False)
    target = f"{registry.host}/big/image:1"
    env = Cli(other_engine).env
    from tests.root.conftest import BERTH

    proc = subprocess.Popen([BERTH, "pull", target], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Pulling fs layer" in line:
            proc.kill()
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    if proc.returncode == -9:
        _no_image(other_engine, target)
    other_engine.repair()
    assert not list((other_engine.content.root / "ingest").glob("*"))
    assert not list(other_engine.layer_store.base.glob(".tmp-*"))
    img = other_engine.images.pull(target)
    assert len(img.attrs["RootFS"]["Layers"]) == 2


def _put_manifest(reg: Registry, repo: str, ref: str, doc: dict, media: str) -> str:
    import requests

    data = json.dumps(doc).encode()
    r = requests.put(reg.url(f"/v2/{repo}/manifests/{ref}"), data=data, timeout=30,
                     headers={"Content-Type": media})
    assert r.status_code == 201, r.text
    return _sha(data)


def test_index_platform_selection_and_pull_by_digest(registry: Registry,
                                                      other_engine: Engine) -> None:
    oci_m = "application/vnd.oci.image.manifest.v1+json"
    host_digest = upload_image(registry, "multi/app", "host-only",
                               [_tar([_file("which", b"host")])])
    other_arch = "arm64" if goarch() != "arm64" else "amd64"
    layer = _tar([_file("which", other_arch.encode())])
    blob = gzip.compress(layer, mtime=0)
    config = json.dumps({"architecture": other_arch, "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [_sha(layer)]}}).encode()
    for b in (blob, config):
        put_blob(registry, "multi/app", b)
    other_digest = _put_manifest(registry, "multi/app", "other-only", {
        "schemaVersion": 2, "mediaType": oci_m,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(blob), "size": len(blob)}]}, oci_m)

    def size(d: str) -> int:
        import requests
        return len(requests.get(registry.url(f"/v2/multi/app/manifests/{d}"), timeout=30,
                                headers={"Accept": oci_m}).content)

    index_media = "application/vnd.oci.image.index.v1+json"
    index_digest = _put_manifest(registry, "multi/app", "1", {
        "schemaVersion": 2, "mediaType": index_media, "manifests": [
            {"mediaType": oci_m, "digest": other_digest, "size": size(other_digest),
             "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
            {"mediaType": oci_m, "digest": other_digest, "size": size(other_digest),
             "platform": {"os": "linux", "architecture": other_arch}},
            {"mediaType": oci_m, "digest": host_digest, "size": size(host_digest),
             "platform": {"os": "linux", "architecture": goarch()}}]}, index_media)
    img = other_engine.images.pull(f"{registry.host}/multi/app:1")
    assert img.attrs["Architecture"] == goarch()
    assert img.attrs["RepoDigests"] == [f"{registry.host}/multi/app@{index_digest}"]
    other = other_engine.images.pull(f"{registry.host}/multi/app", tag="1",
                                     platform=f"linux/{other_arch}")
    assert other.attrs["Architecture"] == other_arch and other.id != img.id
    # by digest: no tag is created, the RepoDigest is recorded
    by_digest = other_engine.images.pull(f"{registry.host}/multi/app@{host_digest}")
    assert by_digest.id == img.id
    cli = Cli(other_engine)
    res = cli("pull", "--platform", "linux/s390x", f"{registry.host}/multi/app:1")
    assert res.returncode == 125 and "no matching manifest for linux/s390x" in res.stderr


# ---------------------------------------------------------------- parallel unpacking

def _whiteout(path: str) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(path), b""


@pytest.mark.parametrize("tee_limit, unpackers", [(16 << 20, 4), (4096, 1)],
                         ids=["streamed", "outrun-unpacker"])
def test_parallel_unpack_keeps_layer_order_and_whiteouts(
        registry: Registry, engine: Engine, busybox: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, tee_limit: int, unpackers: int) -> None:
    """Layers unpacked at once into separate dirs still stack in manifest order.  With
    one unpacker and a tiny tee, downloads that outrun it fall back to the stored blob."""
    import requests

    from sdk.distribution import pull as pull_mod

    monkeypatch.setattr(pull_mod, "_TEE_LIMIT", tee_limit)
    monkeypatch.setattr(pull_mod, "_UNPACKERS", unpackers)
    base = engine.image_store.layer_chain(busybox)
    top = [
        _tar([_file("data/a", b"1a\n"), _file("data/b", b"1b\n"), _file("keep/x", b"1x\n")]),
        _tar([_whiteout("data/.wh.a"), _file("data/b", b"2b\n")]),
        _tar([_file("data/big", os.urandom(300_000)), _file("keep/y", b"3y\n")]),
        _tar([_whiteout("keep/.wh..wh..opq"), _file("keep/z", b"4z\n")]),
    ]
    gz = [gzip.compress(t, mtime=0) for t in top]
    config = json.dumps({"architecture": goarch(), "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids":
                                    [lr.diff_id for lr in base] + [_sha(t) for t in top]}}
                        ).encode()
    for blob in [*(engine.content.read_bytes(lr.blob_digest) for lr in base), *gz, config]:
        put_blob(registry, "par/image", blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": lr.blob_digest, "size": lr.blob_size} for lr in base] +
                  [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _sha(b), "size": len(b)} for b in gz],
    }).encode()
    r = requests.put(registry.url("/v2/par/image/manifests/1"), data=manifest, timeout=30,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status_code == 201, r.text
    ref = f"{registry.host}/par/image:1"
    eng = Engine(root=tmp_path / "par-root", config=tmp_path / "daemon.json")
    try:
        events: list[dict] = []
        img = eng.images.pull(ref, progress=events.append)
        assert len(img.attrs["RootFS"]["Layers"]) == len(base) + 4
        assert sum(e["status"] == "Pull complete" for e in events) == len(base) + 4
        out = eng.containers.run(ref, ["sh", "-c", "ls /data /keep; cat /data/b /keep/z"],
                                 remove=True)
        assert out == b"/data:\nb\nbig\n\n/keep:\nz\n2b\n4z\n", out
        assert not list(eng.layer_store.base.glob(".tmp-*"))
    finally:
        eng.repair()
        eng.close()


def test_a_bad_layer_among_parallel_ones_changes_nothing(registry: Registry,
                                                         other_engine: Engine) -> None:
    """The third of four layers is malicious: the error names it, and no layer, staging
    dir or image is left, whatever the other unpackers had done."""
    good = [_tar([_file(f"g{n}/f{i}", os.urandom(30_000)) for i in range(60)])
            for n in range(3)]
    evil = _tar([_file("ok", b"fine"), _file("../../escape", b"pwned")])
    upload_image(registry, "bad/parallel", "1", [good[0], good[1], evil, good[2]])
    with pytest.raises(InvalidArgument, match="escape"):
        other_engine.images.pull(f"{registry.host}/bad/parallel:1")
    _no_image(other_engine, f"{registry.host}/bad/parallel:1")
    assert other_engine.db.query("SELECT * FROM layers") == []
    base = other_engine.layer_store.base
    assert [p.name for p in base.glob("*") if p.name != "l"] == []
    assert not list((other_engine.content.root / "ingest").glob("*"))
