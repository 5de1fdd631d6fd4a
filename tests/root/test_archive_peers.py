"""Archives between berth and the real Docker engine (a private dockerd per module) and a
real registry: save/load and export/import both ways, with the images run on both sides,
IDs, tags and history compared; a loaded OCI archive pushed back keeps its digest."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.root.conftest import Cli
from tests.root.test_registry_client import REGISTRY_BIN, Registry, start_registry, stop_registry
from tests.unit.test_archive_load import Img, config, docker_old

pytestmark = pytest.mark.root
DOCKERD = "/usr/sbin/dockerd"
DOCKER = shutil.which("docker")
SKOPEO = shutil.which("skopeo")
needs_docker = pytest.mark.skipif(
    not os.path.exists(DOCKERD) or DOCKER is None,
    reason="dockerd (/usr/sbin/dockerd) or the docker client is not installed")

Docker = Callable[..., subprocess.CompletedProcess[str]]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (dockerd stops its containerd and shims), SIGKILL after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _unmount_under(path: Path) -> None:
    """Mounts dockerd left below its roots (none after a clean shutdown)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """A dockerd of its own (own data/exec roots, socket, pidfile; no bridge, no iptables),
    stopped by its PID afterwards with everything it stored removed."""
    if not os.path.exists(DOCKERD) or DOCKER is None:
        pytest.skip("dockerd (/usr/sbin/dockerd) or the docker client is not installed")
    base = Path(tempfile.mkdtemp(prefix="berth-dockerd-", dir="/tmp"))
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "wb")       # noqa: SIM115 - closed right below
    proc = subprocess.Popen(
        [DOCKERD, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge=none",
         "--iptables=false", "--ip6tables=false", "--ip-masq=false",
         "--containerd-namespace", "berth-archive-test",
         "--containerd-plugins-namespace", "berth-archive-test-plugins"],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(base / "cfg"))
    env.pop("DOCKER_CONTEXT", None)

    def run(*args: str, input: bytes | None = None, ok: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        if args and args[0] in ("run", "create"):     # never reach out for an image
            args = (args[0], "--pull", "never", *args[1:])
        r = subprocess.run([DOCKER or "docker", *args], capture_output=True, env=env,
                           input=input, timeout=timeout)
        res = subprocess.CompletedProcess(r.args, r.returncode,
                                          r.stdout.decode(errors="replace"),
                                          r.stderr.decode(errors="replace"))
        if ok:
            assert res.returncode == 0, f"docker {' '.join(args)}: {res.stderr}"
        return res

    try:
        deadline = time.monotonic() + 60
        while run("version", ok=False, timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("dockerd did not start here: " +
                            (base / "dockerd.log").read_text(errors="replace")[-600:])
            time.sleep(0.2)
        yield run
    finally:
        for cid in run("ps", "-aq", ok=False, timeout=30).stdout.split():
            run("rm", "-f", cid, ok=False, timeout=30)
        _stop(proc)
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[[], Cli]]:
    """Makes empty engine roots (the other side of a transfer)."""
    made: list[Engine] = []

    def make() -> Cli:
        n = len(made)
        made.append(Engine(root=tmp_path / f"fresh-root-{n}",
                           config=tmp_path / f"fresh-{n}.json"))
        return Cli(made[-1])

    yield make
    for eng in made:
        eng.repair()
        eng.close()


# ---- helpers -------------------------------------------------------------------------------
def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stderr
    return res.stdout


def berth_id(berth: Cli, ref: str) -> str:
    return ok(berth("image", "inspect", "-f", "{{.Id}}", ref)).strip()


def docker_inspect(docker: Docker, ref: str) -> dict:
    return json.loads(docker("image", "inspect", ref).stdout)[0]


def layer_with(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def history_config(layers: list[bytes], steps: list[str], cmd: list[str]) -> bytes:
    """A config with one history entry per layer (as a build writes it)."""
    doc = json.loads(config(layers))
    doc["config"] = {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                         "/usr/bin:/sbin:/bin"]}
    doc["history"] = [{"created": "2024-01-02T03:04:05Z", "created_by": step}
                      for step in steps]
    return json.dumps(doc, separators=(",", ":")).encode()


@pytest.fixture
def two_layer(berth: Cli, busybox_tar: Path, tmp_path: Path) -> str:
    """busybox plus a layer with /hello.txt, loaded into berth as peer/hello:1."""
    base = busybox_tar.read_bytes()
    extra = layer_with({"hello.txt": b"hello from a berth-saved image\n"})
    cfg = history_config([base, extra], ["/bin/sh -c #(nop) ADD file:busybox in / ",
                                         "/bin/sh -c #(nop) COPY hello.txt /"],
                         ["cat", "/hello.txt"])
    archive = tmp_path / "two-layer.tar"
    archive.write_bytes(docker_old([Img([base, extra], ["peer/hello:1"], cfg)]))
    ok(berth("load", "-q", "-i", str(archive)))
    return berth_id(berth, "peer/hello:1")


def history_rows(out: str) -> list[list[str]]:
    return [line.split("|") for line in out.splitlines()]


# ---- save / load ---------------------------------------------------------------------------
@needs_docker
def test_berth_save_docker_load_run_and_history(berth: Cli, docker: Docker, two_layer: str,
                                                tmp_path: Path) -> None:
    ok(berth("tag", "peer/hello:1", "peer/hello:other"))
    archive = tmp_path / "berth-saved.tar"
    ok(berth("save", "-o", str(archive), "peer/hello:1", "peer/hello:other", "busybox"))
    out = docker("load", "-i", str(archive)).stdout
    assert "Loaded image: peer/hello:1" in out and "Loaded image: busybox:latest" in out
    got = docker_inspect(docker, "peer/hello:1")
    assert got["Id"] == two_layer
    assert sorted(got["RepoTags"]) == ["peer/hello:1", "peer/hello:other"]
    assert docker_inspect(docker, "busybox")["Id"] == berth_id(berth, "busybox")
    run = docker("run", "--rm", "--network", "none", "peer/hello:1")
    assert run.stdout == "hello from a berth-saved image\n"
    run = docker("run", "--rm", "--network", "none", "busybox", "echo", "bb-from-berth")
    assert run.stdout == "bb-from-berth\n"
    fmt = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
    theirs = history_rows(docker("history", "--no-trunc", "--human=false", "--format", fmt,
                                 "peer/hello:1").stdout)
    ours = history_rows(ok(berth("history", "--no-trunc", "--human=false", "--format", fmt,
                                 "peer/hello:1")))
    assert ours == theirs
    docker("rmi", "peer/hello:1", "peer/hello:other", "busybox")


@needs_docker
def test_docker_save_shared_layers_berth_load_run(berth: Cli, docker: Docker,
                                                  busybox_tar: Path, tmp_path: Path) -> None:
    docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "dk/base:1")
    docker("run", "--name", "dk-commit-src", "--network", "none", "dk/base:1", "sh", "-c",
           "echo made-by-docker > /made.txt")
    docker("commit", "-c", 'CMD ["cat", "/made.txt"]', "dk-commit-src", "dk/child:1")
    docker("rm", "dk-commit-src")
    single = tmp_path / "docker-single.tar"
    several = tmp_path / "docker-several.tar"
    docker("save", "-o", str(single), "dk/base:1")
    docker("save", "-o", str(several), "dk/base:1", "dk/child:1")
    ids = {ref: docker_inspect(docker, ref)["Id"] for ref in ("dk/base:1", "dk/child:1")}
    assert docker_inspect(docker, "dk/child:1")["RootFS"]["Layers"][0] == \
        docker_inspect(docker, "dk/base:1")["RootFS"]["Layers"][0]

    out = ok(berth("load", "-i", str(single)))
    assert out == "Loaded image: dk/base:1\n"
    assert berth_id(berth, "dk/base:1") == ids["dk/base:1"]
    out = ok(berth("load", "-i", str(several)))
    assert "Loaded image: dk/child:1" in out
    for ref, image_id in ids.items():
        assert berth_id(berth, ref) == image_id
    r = berth("run", "--rm", "--network", "none", "dk/child:1")
    assert (r.returncode, r.stdout) == (0, "made-by-docker\n"), r.stderr
    r = berth("run", "--rm", "--network", "none", "dk/base:1", "echo", "base-runs")
    assert (r.returncode, r.stdout) == (0, "base-runs\n"), r.stderr
    # the shared base layer is stored once
    layers = [json.loads(ok(berth("image", "inspect", "-f", "{{json .RootFS.Layers}}", ref)))
              for ref in ids]
    assert layers[0][0] == layers[1][0] and len(layers[1]) == 2
    # docker save names the parent (the base is in the archive): berth records it, and
    # the history docker's commit wrote reads the same in both, parent ID included
    assert ok(berth("image", "inspect", "-f", "{{.Parent}}", "dk/child:1")).strip() == \
        ids["dk/base:1"] == docker_inspect(docker, "dk/child:1")["Parent"]
    assert ok(berth("image", "inspect", "-f", "{{.Parent}}", "dk/base:1")).strip() == ""
    fmt = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
    theirs = docker("history", "--no-trunc", "--human=false", "--format", fmt, "dk/child:1")
    ours = berth("history", "--no-trunc", "--human=false", "--format", fmt, "dk/child:1")
    assert history_rows(ok(ours)) == history_rows(theirs.stdout)
    # and berth saves them back into something docker loads to the same IDs, with the
    # same lines on stdout from `load -q` on both sides
    back = tmp_path / "back.tar"
    ok(berth("save", "-o", str(back), "dk/base:1", "dk/child:1"))
    docker("rmi", "dk/child:1", "dk/base:1")
    theirs = docker("load", "-q", "-i", str(back))
    assert theirs.stdout == ok(berth("load", "-q", "-i", str(back)))
    for ref, image_id in ids.items():
        assert docker_inspect(docker, ref)["Id"] == image_id
    assert docker_inspect(docker, "dk/child:1")["Parent"] == ids["dk/base:1"]
    docker("rmi", "dk/child:1", "dk/base:1")


# ---- export / import -----------------------------------------------------------------------
@needs_docker
def test_docker_export_berth_import(berth: Cli, docker: Docker, busybox_tar: Path,
                                    tmp_path: Path) -> None:
    docker("import", str(busybox_tar), "dk/exp:1")
    docker("create", "--name", "dk-export-src", "--network", "none", "dk/exp:1", "sh", "-c",
           "true")
    docker("start", "-a", "dk-export-src")
    exported = tmp_path / "docker-export.tar"
    docker("cp", "-", "dk-export-src:/", input=_tar_bytes({"from-docker.txt": b"exported\n"}))
    docker("export", "-o", str(exported), "dk-export-src")
    docker("rm", "dk-export-src")
    docker("rmi", "dk/exp:1")
    ok(berth("import", "-c", 'CMD ["cat", "/from-docker.txt"]', str(exported),
             "imported/from-docker:1"))
    r = berth("run", "--rm", "--network", "none", "imported/from-docker:1")
    assert (r.returncode, r.stdout) == (0, "exported\n"), r.stderr


@needs_docker
def test_berth_export_docker_import(berth: Cli, docker: Docker, tmp_path: Path) -> None:
    ok(berth("create", "--name", "berth-export-src", "--network", "none", "busybox", "sh",
             "-c", "true"))
    ok(berth("cp", str(_file(tmp_path, "from-berth.txt", b"exported by berth\n")),
             "berth-export-src:/from-berth.txt"))
    exported = tmp_path / "berth-export.tar"
    ok(berth("export", "-o", str(exported), "berth-export-src"))
    ok(berth("rm", "berth-export-src"))
    docker("import", "-c", 'CMD ["cat", "/from-berth.txt"]', str(exported), "bx/imp:1")
    run = docker("run", "--rm", "--network", "none", "bx/imp:1")
    assert run.stdout == "exported by berth\n"
    run = docker("run", "--rm", "--network", "none", "bx/imp:1", "ls", "/bin/busybox")
    assert run.stdout == "/bin/busybox\n"
    docker("rmi", "bx/imp:1")


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    return layer_with(files)


def _file(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


# ---- a loaded archive pushed back keeps its manifest digest --------------------------------
@pytest.mark.skipif(SKOPEO is None or not os.path.exists(REGISTRY_BIN),
                    reason="skopeo or docker-registry (Debian packages) not installed")
def test_loaded_archives_push_their_own_manifest(berth: Cli, fresh: Callable[[], Cli],
                                                 busybox_tar: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo copies a registry image to oci-archive:; berth loads it into an empty root
    and pushes it: the registry gets the very manifest (same digest).  Loaded where the
    layer is already unpacked from a plain blob (``berth``'s root has busybox imported),
    or from a docker-archive (no manifest in it), the image gets berth's own manifest;
    that one and a berth save archive's (Docker 25+ layout, plain layers) are pushed with
    their plain layers gzipped, as docker does, so under a new digest that copies fine."""
    from tests.root.test_registry_client import _oci_layout

    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(tmp_path / "auth.json"))
    reg: Registry = start_registry(tmp_path / "registry")
    try:
        layout = tmp_path / "layout"
        _oci_layout(layout, busybox_tar)
        src = f"{reg.host}/src/busybox:v1"
        subprocess.run([SKOPEO or "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
                        f"oci:{layout}:v1", f"docker://{src}"], check=True, timeout=60)
        digest = json.loads(subprocess.run(
            [SKOPEO or "skopeo", "inspect", "--tls-verify=false", f"docker://{src}"],
            check=True, timeout=60, capture_output=True, text=True).stdout)["Digest"]
        for kind in ("oci-archive", "docker-archive"):
            subprocess.run([SKOPEO or "skopeo", "copy", "--quiet", "--src-tls-verify=false",
                            f"docker://{src}", f"{kind}:{tmp_path / kind}.tar:{src}"],
                           check=True, timeout=60)
        saved = tmp_path / "berth-save.tar"
        ok(berth("save", "-o", str(saved), "busybox"))
        with tarfile.open(saved) as t:
            index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        saved_digest = index["manifests"][0]["digest"]
        cases = [(tmp_path / "oci-archive.tar", src, fresh(), digest),
                 (tmp_path / "oci-archive.tar", src, berth, None),
                 (tmp_path / "docker-archive.tar", src, fresh(), None),
                 (saved, "busybox", fresh(), None)]       # plain layers: gzipped
        for n, (archive, name, cli, expected) in enumerate(cases):
            ok(cli("load", "-i", str(archive)))
            dst = f"{reg.host}/loaded/n{n}:v1"
            ok(cli("tag", name, dst))
            pushed = ok(cli("push", dst)).split("digest: ")[1].split()[0]
            if expected:
                assert pushed == expected, (n, archive.name)
            else:
                assert pushed not in (digest, saved_digest), (n, archive.name)
            copied = tmp_path / f"copied-{n}"
            subprocess.run([SKOPEO or "skopeo", "copy", "--quiet", "--src-tls-verify=false",
                            "--dest-oci-accept-uncompressed-layers", f"docker://{dst}",
                            f"oci:{copied}:x"], check=True, timeout=60)
            assert json.loads((copied / "index.json").read_text())["manifests"][0][
                "digest"] == pushed
            ok(cli("rmi", dst))
    finally:
        stop_registry(reg)


# ---- podman --------------------------------------------------------------------------------
PODMAN = shutil.which("podman")
Podman = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    """podman with private storage, run and tmp dirs (runc, no network, no events)."""
    if PODMAN is None:
        pytest.skip("podman is not installed")
    base = Path(tempfile.mkdtemp(prefix="berth-podman-", dir="/tmp"))
    flags = ["--root", str(base / "root"), "--runroot", str(base / "runroot"),
             "--tmpdir", str(base / "tmp"), "--runtime", "runc", "--storage-driver",
             "overlay", "--events-backend", "none", "--cgroup-manager", "cgroupfs"]
    env = dict(os.environ, TMPDIR=str(base / "tmp"))
    (base / "tmp").mkdir()

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        if args and args[0] in ("run", "create"):
            args = (args[0], "--pull", "never", *args[1:])
        res = subprocess.run([PODMAN or "podman", *flags, *args], capture_output=True,
                             text=True, env=env, timeout=120)
        if ok:
            assert res.returncode == 0, f"podman {' '.join(args)}: {res.stderr}"
        return res

    try:
        if run("info", ok=False).returncode != 0:
            pytest.skip("podman does not work here: " + run("info", ok=False).stderr[-400:])
        yield run
    finally:
        run("rm", "-af", ok=False)
        run("rmi", "-af", ok=False)
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


RUN_FLAGS = ("--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit",
             "nproc=1024:1024")


def podman_id(podman: Podman, ref: str) -> str:
    return "sha256:" + podman("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()


def test_berth_save_podman_load_run(berth: Cli, podman: Podman, two_layer: str,
                                    tmp_path: Path) -> None:
    archive = tmp_path / "for-podman.tar"
    ok(berth("save", "-o", str(archive), "peer/hello:1"))
    podman("load", "-i", str(archive))
    assert podman_id(podman, "peer/hello:1") == two_layer
    run = podman("run", *RUN_FLAGS, "peer/hello:1")
    assert run.stdout == "hello from a berth-saved image\n"
    podman("rmi", "peer/hello:1")


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_save_berth_load_run(berth: Cli, podman: Podman, busybox_tar: Path,
                                    tmp_path: Path, fmt: str) -> None:
    podman("import", "--change", 'CMD ["sh"]', str(busybox_tar), "localhost/pd/base:1")
    podman("run", "--name", "pd-commit-src", *RUN_FLAGS[1:], "localhost/pd/base:1", "sh",
           "-c", "echo made-by-podman > /made.txt")
    podman("commit", "-q", "--change", 'CMD ["cat", "/made.txt"]', "pd-commit-src",
           "localhost/pd/child:1")
    podman("rm", "pd-commit-src")
    archive = tmp_path / f"podman-{fmt}.tar"
    # podman names an image without a registry localhost/...; its archives say so
    refs = ["localhost/pd/base:1", "localhost/pd/child:1"]
    if fmt == "oci-archive":        # podman writes one image per oci-archive
        refs = refs[1:]
    podman("save", "--format", fmt, "-o", str(archive),
           *(["-m"] if len(refs) > 1 else []), *refs)
    ok(berth("load", "-i", str(archive)))
    for ref in refs:
        assert berth_id(berth, ref) == podman_id(podman, ref)
    r = berth("run", "--rm", "--network", "none", "localhost/pd/child:1")
    assert (r.returncode, r.stdout) == (0, "made-by-podman\n"), r.stderr
    podman("rmi", "localhost/pd/child:1", "localhost/pd/base:1")
