"""berth's registry server against the real docker engine (dockerd from Debian's docker.io)
and podman: load a busybox image, tag, push (anonymous, and after ``login`` with htpasswd
Basic or token auth), remove, pull back, compare digests; pull by digest, ``docker manifest
inspect``, and docker -> podman across the same registry.  Seed 002's flow, with berth's
server in place of ``registry:2``.

dockerd runs as this test's own instance (its own data/exec roots, socket, pidfile and
containerd namespace, no bridge, no iptables), stopped by PID at the end.  podman runs with
its own --root/--runroot.  The registries listen on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.unit.registry_helpers import running

pytestmark = pytest.mark.root
bcrypt = pytest.importorskip("bcrypt")

DOCKERD = "/usr/sbin/dockerd"
DOCKER = shutil.which("docker")
PODMAN = shutil.which("podman")
USER, PASSWORD = "alice", "s3cret"
TAG = "berth-peers"
ACCEPT = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.index.v1+json"])


# ---- image and registries ----------------------------------------------------------------
@pytest.fixture(scope="module")
def image_archive(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Path:
    """A ``docker save``-format archive of busybox (one uncompressed layer)."""
    layer = busybox_tar.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "berth test"}]},
        sort_keys=True).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    layer_dir = hashlib.sha256(diff_id.encode()).hexdigest()
    manifest = json.dumps([{"Config": f"{config_hex}.json",
                            "RepoTags": [f"berth-test/busybox:{TAG}"],
                            "Layers": [f"{layer_dir}/layer.tar"]}]).encode()
    out = tmp_path_factory.mktemp("archive") / "busybox.tar"
    with tarfile.open(out, "w") as tar:
        for name, data in ((f"{config_hex}.json", config), (f"{layer_dir}/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return out


@dataclass
class Registries:
    open: str              # 127.0.0.1:PORT, anonymous pull and push
    basic: str             # htpasswd, Basic auth
    token: str             # htpasswd, Bearer tokens from /auth/token
    scoped: str            # token auth plus auth.access (per-repository permissions)


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    tmp = tmp_path_factory.mktemp("peer-registries")
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text("".join(
        f"{u}:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode() + "\n"
        for u in (USER, "bob")))
    access = {USER: {"**": ["*"]}, "bob": {"lib/*": ["pull"], "bob/**": ["pull", "push"]}}
    with running(tmp / "open") as o, \
            running(tmp / "basic", htpasswd_path=str(htpasswd)) as b, \
            running(tmp / "token", htpasswd_path=str(htpasswd), token_enabled=True) as t, \
            running(tmp / "scoped", htpasswd_path=str(htpasswd), token_enabled=True,
                    access=access) as sc:
        yield Registries(o.address, b.address, t.address, sc.address)


def registry_digest(address: str, repo: str, tag: str, auth: tuple[str, str] | None = None
                    ) -> str:
    """The manifest digest berth's server stores for ``repo:tag`` (asked over HTTP)."""
    r = requests.head(f"http://{address}/v2/{repo}/manifests/{tag}", auth=auth,
                      headers={"Accept": ACCEPT}, timeout=10)
    if r.status_code == 401 and "Bearer" in r.headers.get("WWW-Authenticate", ""):
        tok = requests.get(f"http://{address}/auth/token", auth=auth, timeout=10, params={
            "service": address, "scope": f"repository:{repo}:pull"}).json()["token"]
        r = requests.head(f"http://{address}/v2/{repo}/manifests/{tag}", timeout=10,
                          headers={"Accept": ACCEPT, "Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    return r.headers["Docker-Content-Digest"]


def _run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 180,
         check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, env=env, capture_output=True, text=stdin is None,
                       input=stdin, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r


# ---- dockerd -----------------------------------------------------------------------------
@dataclass
class Docker:
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        assert DOCKER is not None
        r = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True,
                           input=stdin, timeout=180)
        if check:
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
        return r


@pytest.fixture(scope="module")
def docker(registries: Registries) -> Iterator[Docker]:
    if not os.path.exists(DOCKERD):
        pytest.skip(f"needs dockerd ({DOCKERD}, Debian package docker.io)")
    if DOCKER is None:
        pytest.skip("needs a docker client")
    base = Path(tempfile.mkdtemp(prefix="berth-peers-", dir="/tmp"))   # short socket paths
    sock = base / "docker.sock"
    argv = [DOCKERD, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "docker.pid"), "-H", f"unix://{sock}",
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--containerd-namespace", "berth-peers",
            "--containerd-plugins-namespace", "berth-peers-plugins"]
    for address in (registries.open, registries.basic, registries.token, registries.scoped):
        argv += ["--insecure-registry", address]
    with open(base / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base),
           "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(base / "client")}
    client = Docker(env)
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail("dockerd exited: " + (base / "dockerd.log").read_text()[-3000:])
            if sock.exists() and client("version", check=False).returncode == 0:
                break
            if time.time() > deadline:
                pytest.fail("dockerd did not answer: " +
                            (base / "dockerd.log").read_text()[-3000:])
            time.sleep(0.2)
        yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _umount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def _umount_under(base: Path) -> None:
    """Unmount whatever dockerd left mounted below ``base`` (deepest first)."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(str(base) + "/")), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)


def _load(docker: Docker, archive: Path) -> str:
    """``docker load`` the busybox archive; its image ID."""
    out = docker("load", "-i", str(archive)).stdout
    assert f"berth-test/busybox:{TAG}" in out, out
    return docker("image", "inspect", "--format", "{{.Id}}",
                  f"berth-test/busybox:{TAG}").stdout.strip()


def _push_digest(output: str) -> str:
    """``docker push`` ends with "<tag>: digest: sha256:... size: N"."""
    for line in output.splitlines():
        if "digest: " in line:
            return line.split("digest: ", 1)[1].split()[0]
    raise AssertionError(f"no digest in push output: {output}")


def _repo_digests(docker: Docker, ref: str) -> list[str]:
    return json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}",
                             ref).stdout)


def test_docker_seed_flow_push_pull_by_tag_and_digest(docker: Docker, registries: Registries,
                                                      image_archive: Path) -> None:
    address = registries.open
    image_id = _load(docker, image_archive)
    ref = f"{address}/lib/busybox:{TAG}"
    docker("tag", f"berth-test/busybox:{TAG}", ref)
    digest = _push_digest(docker("push", ref).stdout)
    assert registry_digest(address, "lib/busybox", TAG) == digest
    # seed 002 checks the catalog with curl
    if shutil.which("curl"):
        catalog = _run(["curl", "-sf", f"http://{address}/v2/_catalog"]).stdout
    else:
        catalog = requests.get(f"http://{address}/v2/_catalog", timeout=10).text
    assert "lib/busybox" in json.loads(catalog)["repositories"]
    # pushing again is a no-op with the same digest ("Layer already exists")
    again = docker("push", ref).stdout
    assert _push_digest(again) == digest and "already exists" in again.lower()
    docker("rmi", ref, f"berth-test/busybox:{TAG}")
    assert docker("image", "inspect", image_id, check=False).returncode != 0
    docker("pull", ref)
    assert docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == image_id
    assert f"{address}/lib/busybox@{digest}" in _repo_digests(docker, ref)
    docker("rmi", ref)
    # by digest
    by_digest = f"{address}/lib/busybox@{digest}"
    out = docker("pull", by_digest).stdout
    assert digest in out
    assert docker("image", "inspect", "--format", "{{.Id}}",
                  by_digest).stdout.strip() == image_id
    # docker manifest inspect talks to the registry from the client
    doc = json.loads(docker("manifest", "inspect", "--insecure", ref).stdout)
    assert doc["config"]["digest"] == image_id
    assert doc["layers"][0]["size"] > 0
    docker("rmi", by_digest)


@pytest.mark.parametrize("kind", ["basic", "token"])
def test_docker_login_push_pull_with_htpasswd(docker: Docker, registries: Registries,
                                              image_archive: Path, kind: str) -> None:
    address = getattr(registries, kind)
    image_id = _load(docker, image_archive)
    ref = f"{address}/team/busybox:{TAG}"
    docker("tag", f"berth-test/busybox:{TAG}", ref)
    refused = docker("push", ref, check=False)
    assert refused.returncode != 0
    # Basic: the 401 challenge; token: an anonymous token without push scope
    assert any(m in refused.stderr.lower() for m in (
        "authentication required", "no basic auth credentials",
        "requested access to the resource is denied")), refused.stderr
    bad = docker("login", "-u", USER, "--password-stdin", address, stdin="wrong\n",
                 check=False)
    assert bad.returncode != 0
    assert "Login Succeeded" in docker("login", "-u", USER, "--password-stdin", address,
                                       stdin=PASSWORD + "\n").stdout
    try:
        digest = _push_digest(docker("push", ref).stdout)
        assert registry_digest(address, "team/busybox", TAG, (USER, PASSWORD)) == digest
        docker("rmi", ref, f"berth-test/busybox:{TAG}")
        docker("pull", ref)
        assert docker("image", "inspect", "--format", "{{.Id}}",
                      ref).stdout.strip() == image_id
        assert f"{address}/team/busybox@{digest}" in _repo_digests(docker, ref)
        doc = json.loads(docker("manifest", "inspect", "--insecure",
                                f"{address}/team/busybox@{digest}").stdout)
        assert doc["config"]["digest"] == image_id
    finally:
        docker("logout", address)
        docker("rmi", ref, check=False)
    # credentials gone: pulling is refused again
    assert docker("pull", ref, check=False).returncode != 0


def test_docker_per_repository_access(docker: Docker, registries: Registries,
                                      image_archive: Path) -> None:
    """bob may pull lib/* and push below bob/ only; alice may do everything."""
    address = registries.scoped
    image_id = _load(docker, image_archive)
    lib, own = f"{address}/lib/busybox:{TAG}", f"{address}/bob/busybox:{TAG}"
    for ref in (lib, own):
        docker("tag", f"berth-test/busybox:{TAG}", ref)
    try:
        docker("login", "-u", USER, "--password-stdin", address, stdin=PASSWORD + "\n")
        digest = _push_digest(docker("push", lib).stdout)
        docker("logout", address)
        docker("login", "-u", "bob", "--password-stdin", address, stdin=PASSWORD + "\n")
        docker("tag", lib, lib.replace(f":{TAG}", ":bob"))
        denied = docker("push", lib.replace(f":{TAG}", ":bob"), check=False)
        assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr
        assert _push_digest(docker("push", own).stdout) == digest
        docker("rmi", lib, own, lib.replace(f":{TAG}", ":bob"), f"berth-test/busybox:{TAG}")
        docker("pull", lib)                       # pull on lib/* is granted
        assert docker("image", "inspect", "--format", "{{.Id}}",
                      lib).stdout.strip() == image_id
        tags = requests.get(f"http://{address}/v2/lib/busybox/tags/list", timeout=10,
                            headers={"Authorization": "Bearer " + requests.get(
                                f"http://{address}/auth/token", auth=(USER, PASSWORD),
                                params={"scope": "repository:lib/busybox:pull"},
                                timeout=10).json()["token"]}).json()["tags"]
        assert tags == [TAG]                      # bob's refused push left no tag
    finally:
        docker("logout", address)
        docker("rmi", lib, own, check=False)


# ---- podman ------------------------------------------------------------------------------
@dataclass
class Podman:
    argv: list[str]
    env: dict[str, str]

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True,
                           input=stdin, timeout=180)
        if check:
            assert r.returncode == 0, f"podman {' '.join(args)}: {r.stderr}"
        return r


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    if PODMAN is None:
        pytest.skip("needs podman (Debian package podman)")
    base = Path(tempfile.mkdtemp(prefix="berth-podman-", dir="/tmp"))
    argv = [PODMAN, "--root", str(base / "root"), "--runroot", str(base / "run"),
            "--storage-driver", "vfs", "--tmpdir", str(base / "tmp"),
            "--cgroup-manager", "cgroupfs", "--events-backend", "none",
            "--runtime", "runc"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base),
           "XDG_RUNTIME_DIR": str(base / "xdg"), "REGISTRY_AUTH_FILE": str(base / "auth.json"),
           "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf")}
    (base / "xdg").mkdir(mode=0o700)
    (base / "auth.json").write_text('{"auths": {}}')   # podman 4.3 stats it before a push
    (base / "registries.conf").write_text('unqualified-search-registries = []\n')
    try:
        yield Podman(argv, env)
    finally:
        subprocess.run([*argv, "system", "reset", "--force"], env=env, capture_output=True,
                       timeout=120)
        _umount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def _podman_load(podman: Podman, archive: Path) -> str:
    out = podman("load", "-i", str(archive)).stdout
    assert "busybox" in out, out
    return podman("image", "inspect", "--format", "{{.Id}}",
                  f"berth-test/busybox:{TAG}").stdout.strip()


def test_podman_push_pull_open_and_with_login(podman: Podman, registries: Registries,
                                              image_archive: Path, tmp_path: Path) -> None:
    image_id = _podman_load(podman, image_archive)
    for kind in ("open", "token"):
        address = getattr(registries, kind)
        auth = (USER, PASSWORD) if kind != "open" else None
        ref = f"{address}/pod/busybox:{TAG}"
        digestfile = tmp_path / f"{kind}.digest"
        if auth:
            refused = podman("push", "--tls-verify=false", f"berth-test/busybox:{TAG}", ref,
                             check=False)
            assert refused.returncode != 0
            podman("login", "--tls-verify=false", "-u", USER, "--password-stdin", address,
                   stdin=PASSWORD + "\n")
        podman("push", "--tls-verify=false", "--digestfile", str(digestfile),
               f"berth-test/busybox:{TAG}", ref)
        digest = digestfile.read_text().strip()
        assert registry_digest(address, "pod/busybox", TAG, auth) == digest
        podman("rmi", "--force", image_id)
        podman("pull", "--tls-verify=false", ref)
        assert podman("image", "inspect", "--format", "{{.Digest}}",
                      ref).stdout.strip() == digest
        assert podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() \
            == image_id
        podman("pull", "--tls-verify=false", f"{address}/pod/busybox@{digest}")
        podman("tag", ref, f"berth-test/busybox:{TAG}")
        if auth:
            podman("logout", address)


def test_docker_push_podman_pull(docker: Docker, podman: Podman, registries: Registries,
                                 image_archive: Path) -> None:
    """The same image crosses tools through berth's registry unchanged."""
    image_id = _load(docker, image_archive)
    ref = f"{registries.open}/cross/busybox:{TAG}"
    docker("tag", f"berth-test/busybox:{TAG}", ref)
    digest = _push_digest(docker("push", ref).stdout)
    docker("rmi", ref)
    podman("pull", "--tls-verify=false", ref)
    # .Digest is the first one podman recorded for this image ID (maybe another test's push)
    repo_digests = json.loads(podman("image", "inspect", "--format", "{{json .RepoDigests}}",
                                     ref).stdout)
    assert f"{registries.open}/cross/busybox@{digest}" in repo_digests
    assert podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == \
        image_id.removeprefix("sha256:")
