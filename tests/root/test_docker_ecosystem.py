"""Tools written for Docker drive berth daemon (testinfra's docker backend); docker's own
behaviour matched where berth differed (cp exit codes, CapAdd as stored)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.root.conftest import Cli

from .test_api_daemon import start_daemon, stop_daemon

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]
testinfra = pytest.importorskip("testinfra")
docker_py = pytest.importorskip("docker")
DOCKER = "/usr/local/bin/docker"


@pytest.fixture
def daemon_host(engine: Engine, busybox: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sock = tmp_path / "berth.sock"
    proc = start_daemon(engine, sock)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    try:
        yield f"unix://{sock}"
    finally:
        stop_daemon(proc, sock)


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")
def test_testinfra_docker_backend(daemon_host: str) -> None:
    """testinfra runs `docker exec` (the real docker CLI) through DOCKER_HOST."""
    run = subprocess.run([DOCKER, "run", "-d", "--name", "infra", "--network", "none",
                          "busybox", "sh", "-c",
                          "mkdir -p /srv /home; echo 'hello infra' > /srv/greeting;"
                          " echo alice:x:1234:1234::/home/alice:/bin/sh >> /etc/passwd;"
                          " echo staff:x:1234: >> /etc/group;"
                          " exec sleep 300"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    try:
        host = testinfra.get_host("docker://infra")
        for _ in range(50):     # the entrypoint writes the file and the user
            if host.file("/srv/greeting").exists and host.user("alice").exists:
                break
            time.sleep(0.1)
        greeting = host.file("/srv/greeting")
        assert greeting.is_file and greeting.content_string == "hello infra\n"
        assert greeting.user == "root" and greeting.mode == 0o644
        assert host.file("/etc").is_directory
        assert not host.file("/nonexistent").exists
        out = host.run("echo out; echo err >&2; exit 7")
        assert (out.rc, out.stdout, out.stderr) == (7, "out\n", "err\n")
        assert host.check_output("id -u") == "0"
        alice = host.user("alice")
        assert alice.exists and (alice.uid, alice.gid, alice.group) == (1234, 1234, "staff")
        assert host.user().name == "root"
        assert host.run("cat /proc/1/cmdline").stdout == "sleep\x00300\x00"   # exec sh
    finally:
        subprocess.run([DOCKER, "rm", "-f", "infra"], capture_output=True, timeout=60)


def test_cp_errors_exit_1_like_docker(berth: Cli, tmp_path: Path) -> None:
    """docker 28 against dockerd exits 1 for each of these (checked side by side)."""
    assert berth("create", "--name", "cpc", "--network", "none", "busybox",
                 "true").returncode == 0
    cases = [("nosuch:/x", str(tmp_path / "o"), "No such container"),
             ("cpc:/nonexistent", str(tmp_path / "o"), "Could not find the file"),
             (str(tmp_path / "nonexistent"), "cpc:/", "no such file or directory"),
             (str(tmp_path), "cpc:/nodir/sub/", ""),
             ("cpc:/etc/passwd", "/nonexistent-dir/x", "does not exist"),
             ("cpc", str(tmp_path), "at least one container"),
             ("cpc:/a", "cpc:/b", "between containers")]
    (tmp_path / "f").write_text("x")
    cases[3] = (str(tmp_path / "f"), "cpc:/nodir/sub/", "does not exist")
    for src, dst, message in cases:
        r = berth("cp", src, dst)
        assert r.returncode == 1 and message in r.stderr, (src, dst, r.stderr)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")
def test_cap_add_stored_as_dockerd_stores_it(daemon_host: str) -> None:
    """dockerd keeps HostConfig.CapAdd/CapDrop as the client sent them; the docker CLI
    normalises (CAP_ prefix, upper case, sorted, deduplicated) before sending."""
    r = subprocess.run([DOCKER, "create", "--name", "caps", "--cap-add", "sys_time",
                        "--cap-add", "NET_ADMIN", "--cap-add", "net_admin", "--cap-drop",
                        "ALL", "busybox", "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    try:
        r = subprocess.run([DOCKER, "inspect", "-f",
                            "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}", "caps"],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout.strip() == '["CAP_NET_ADMIN","CAP_SYS_TIME"] ["ALL"]'
    finally:
        subprocess.run([DOCKER, "rm", "caps"], capture_output=True, timeout=60)
    client = docker_py.APIClient(base_url=daemon_host, version="1.41")
    try:
        c = client.create_container("busybox", ["true"], host_config=client.create_host_config(
            cap_add=["sys_time", "NET_ADMIN", "net_admin"], cap_drop=["mknod", "all"]))
        hc = client.inspect_container(c["Id"])["HostConfig"]
        assert (hc["CapAdd"], hc["CapDrop"]) == (["sys_time", "NET_ADMIN", "net_admin"],
                                                 ["mknod", "all"])
        client.remove_container(c["Id"])
    finally:
        client.close()


MOLECULE_SCENARIO = Path(__file__).resolve().parents[1] / "e2e" / "molecule_docker"


def _has_docker_driver() -> bool:
    try:
        import molecule_plugins.docker  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not _has_docker_driver(), reason="molecule-plugins[docker] is missing")
@pytest.mark.skipif(not os.path.exists(DOCKER), reason="no docker CLI")
def test_molecule_docker_driver(engine: Engine, daemon_host: str, tmp_path: Path) -> None:
    """`molecule test` with Molecule's own docker driver: community.docker creates the
    instance through the API, the community.docker.docker connection runs `docker exec`."""
    import sys
    import zipfile

    from tests.e2e.ansible_run import ansible_env
    from tests.e2e.community_docker import community_docker
    from tests.e2e.images import IMAGE_REF, debian_ansible_tar

    repo, tag = IMAGE_REF.rsplit(":", 1)
    engine.images.import_image(str(debian_ansible_tar()), repository=repo, tag=tag,
                               changes=['CMD ["bash"]'])
    collections = community_docker()
    # the driver's create.yml names ansible.posix.synchronize (skipped for pre-built
    # images, but it must resolve): the same pinned ansible wheel ships ansible.posix
    wheel = next((collections.parent / "ansible-wheel").glob("ansible-*.whl"))
    posix = tmp_path / "posix"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(posix, [n for n in zf.namelist()
                              if n.startswith("ansible_collections/ansible/posix/")])
    home = tmp_path / "home"
    env = ansible_env(collections, home)
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{collections}:{posix}"
    env.update({"DOCKER_HOST": daemon_host, "DOCKER_CONFIG": str(tmp_path / "docker-config"),
                "HOME": str(home), "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "eph"),
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    env.pop("ANSIBLE_ROLES_PATH", None)
    p = subprocess.run([str(Path(sys.executable).with_name("molecule")), "test"],
                       cwd=MOLECULE_SCENARIO, env=env, capture_output=True, text=True,
                       timeout=800)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    for action in ("create", "converge", "idempotence", "verify", "destroy"):
        assert f"[default > {action}] Executed: Successful" in out, (action, out[-4000:])
    assert subprocess.run([DOCKER, "ps", "-aq"], capture_output=True, text=True,
                          env=dict(os.environ, DOCKER_HOST=daemon_host)).stdout == ""
