"""``berth daemon`` speaks the Docker Engine API: clients nobody here wrote drive it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.root.conftest import BERTH

pytestmark = pytest.mark.root
docker_py = pytest.importorskip("docker")

from .test_registry_server_interop import aiohttp38  # noqa: E402, F401, F811 - a shared fixture


def start_daemon(engine: Engine, sock: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    proc = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "--group", ""],
                            env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"daemon did not start: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    return proc


def stop_daemon(proc: subprocess.Popen[bytes], sock: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not sock.exists(), "the daemon leaves no socket behind"


@pytest.fixture
def daemon(engine: Engine, busybox: str, tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "berth.sock"
    proc = start_daemon(engine, sock)
    yield str(sock)
    stop_daemon(proc, sock)


def test_daemon_stop_and_start_follow_restart_policies(engine: Engine, busybox: str,
                                                        tmp_path: Path) -> None:
    """Like dockerd without live-restore: containers stop with the daemon, and
    `always` / `unless-stopped` ones come back when it starts again."""
    sock = tmp_path / "r.sock"
    proc = start_daemon(engine, sock)
    names = {"always": "always", "unless": "unless-stopped", "plain": "no"}
    for name, policy in names.items():
        engine.containers.run("busybox", ["sleep", "300"], detach=True, name=name,
                              restart_policy={"Name": policy}, stop_signal="KILL")
    engine.containers.get("unless").stop(timeout=1)       # a user's stop sticks
    engine.containers.get("unless").start()
    stop_daemon(proc, sock)
    assert {c.name: c.status for c in engine.containers.list(all=True)} == \
        {"always": "exited", "unless": "exited", "plain": "exited"}
    proc = start_daemon(engine, sock)
    try:
        status = {c.name: c.status for c in engine.containers.list(all=True)}
        assert status == {"always": "running", "unless": "running", "plain": "exited"}
        engine.containers.get("unless").stop(timeout=1)
    finally:
        stop_daemon(proc, sock)
    proc = start_daemon(engine, sock)
    try:
        assert engine.containers.get("unless").status == "exited"
        assert engine.containers.get("always").status == "running"
    finally:
        stop_daemon(proc, sock)


def test_socket_is_private(daemon: str) -> None:
    mode = stat.S_IMODE(os.stat(daemon).st_mode)
    assert mode == 0o600      # no group given: root only


def test_docker_py_containers(daemon: str) -> None:
    client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
    assert client.ping()
    assert client.version()["Components"][0]["Name"] == "Engine"
    out = client.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"],
                                remove=True, stderr=True)
    assert b"hi" in out
    with pytest.raises(docker_py.errors.ContainerError) as err:
        client.containers.run("busybox", ["sh", "-c", "exit 3"], remove=True)
    assert err.value.exit_status == 3
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="api-web",
                              environment={"A": "1"}, labels={"k": "v"})
    try:
        c.reload()
        assert c.status == "running"
        assert [x.name for x in client.containers.list(filters={"label": "k=v"})] == \
            ["api-web"]
        code, output = c.exec_run(["sh", "-c", "echo $A; echo oops >&2; exit 4"])
        assert code == 4 and b"1\n" in output and b"oops" in output, output
        assert "sleep" in " ".join(" ".join(p) for p in c.top()["Processes"])
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)
    with pytest.raises(docker_py.errors.NotFound):
        client.containers.get("api-web")


def test_docker_py_images_and_volumes(daemon: str) -> None:
    client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
    img = client.images.get("busybox")
    assert "busybox:latest" in img.tags
    assert img.tag("example/bb", "v1")
    assert "example/bb:v1" in client.images.get("example/bb:v1").tags
    client.images.remove("example/bb:v1")
    with pytest.raises(docker_py.errors.ImageNotFound):
        client.images.get("example/bb:v1")
    vol = client.volumes.create("api-vol", labels={"x": "y"})
    assert vol.attrs["Labels"] == {"x": "y"}
    assert "api-vol" in [v.name for v in client.volumes.list()]
    out = client.containers.run("busybox", ["sh", "-c", "echo data > /v/f; cat /v/f"],
                                volumes={"api-vol": {"bind": "/v", "mode": "rw"}},
                                remove=True)
    assert out == b"data\n"
    vol.remove()
    with pytest.raises(docker_py.errors.NotFound):
        client.volumes.get("api-vol")


def test_unknown_endpoint_is_a_json_error(daemon: str) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon)
    s.sendall(b"GET /v1.43/plugins HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 404")
    assert b'"message"' in data


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this host")
def test_docker_cli_walkthrough(daemon: str) -> None:
    env = dict(os.environ, DOCKER_HOST=f"unix://{daemon}", DOCKER_CONFIG="/nonexistent")

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    r = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\n" and "err" in r.stderr
    r = docker("run", "-d", "--name", "cli-web", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        assert "cli-web" in docker("ps").stdout
        assert docker("exec", "cli-web", "cat", "/etc/hostname").stdout.strip()
        r = subprocess.run(["docker", "exec", "-i", "cli-web", "sh", "-c", "wc -c; exit 9"],
                           input="abc", capture_output=True, text=True, env=env, timeout=60)
        assert (r.returncode, r.stdout.strip()) == (9, "3"), r.stderr
        pid = docker("inspect", "-f", "{{.State.Pid}}", "cli-web").stdout.strip()
        assert int(pid) > 0
        assert docker("stop", "-t", "1", "cli-web").returncode == 0
        assert "Exited" in docker("ps", "-a").stdout
        assert docker("start", "cli-web").returncode == 0
    finally:
        assert docker("rm", "-f", "cli-web").returncode == 0
    assert "cli-web" not in docker("ps", "-a").stdout
    r = subprocess.run(["docker", "run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; exit 7"],
                       input="a\nb\n", capture_output=True, text=True, env=env, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (7, "2"), r.stderr
    r = docker("run", "--rm", "no-such-image-here:v9", "true")
    assert r.returncode == 125


PING = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
        "s.sendall(b'GET /_ping HTTP/1.0\\r\\n\\r\\n'); print(s.recv(4096).split()[1].decode())")


def test_group_members_use_the_socket_others_are_refused(engine: Engine, busybox: str,
                                                          tmp_path: Path) -> None:
    tag = os.urandom(3).hex()
    group, member, outsider = f"bt{tag}", f"btm{tag}", f"bto{tag}"
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(["useradd", "-M", "-G", group, member], check=True)
        subprocess.run(["useradd", "-M", outsider], check=True)
        import tempfile

        public = Path(tempfile.mkdtemp(prefix="berth-sock-"))   # pytest's tmp is 0700
        public.chmod(0o755)
        sock = public / "g.sock"
        env = dict(os.environ, BERTH_ROOT=str(engine.root),
                   BERTH_CONFIG=str(engine.config_path))
        proc = subprocess.Popen([BERTH, "daemon", "-H", f"unix://{sock}", "-G", group],
                                env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            st = os.stat(sock)
            assert stat.S_IMODE(st.st_mode) == 0o660
            import grp

            assert st.st_gid == grp.getgrnam(group).gr_gid

            def ping_as(user: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c",
                                       PING, str(sock)], capture_output=True, text=True,
                                      timeout=30)
            ok = ping_as(member)
            assert ok.stdout.strip() == "200", ok.stderr
            refused = ping_as(outsider)
            assert refused.returncode != 0 and "PermissionError" in refused.stderr
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            shutil.rmtree(public, ignore_errors=True)
    finally:
        for user in (member, outsider):
            subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


def test_cli_forwards_to_the_warm_daemon(daemon: str, tmp_path: Path) -> None:
    """With BERTH_HOST, `berth` runs each command inside the daemon's warm helper:
    same output, stdin, exit codes and working directory as the embedded CLI."""
    env = {k: v for k, v in os.environ.items() if k not in ("BERTH_ROOT", "BERTH_CONFIG")}
    env["BERTH_HOST"] = f"unix://{daemon}"

    def berth(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BERTH, *args], capture_output=True, text=True, env=env,
                              input=stdin, cwd=tmp_path, timeout=60)

    r = berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = berth("run", "-i", "--rm", "busybox", "wc", "-c", stdin="12345")
    assert (r.returncode, r.stdout.strip()) == (0, "5")
    (tmp_path / "data").mkdir()
    r = berth("run", "--rm", "-v", f"{tmp_path / 'data'}:/d", "busybox", "sh", "-c",
              "echo x > /d/f")
    assert r.returncode == 0 and (tmp_path / "data" / "f").read_text() == "x\n"
    r = berth("run", "-d", "--name", "fwd", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    try:
        assert "fwd" in berth("ps").stdout
        assert berth("exec", "fwd", "true").returncode == 0
    finally:
        assert berth("rm", "-f", "fwd").returncode == 0
    assert berth("inspect", "nothing-here").returncode == 1
    assert "Mode:           service (berth daemon)" in berth("version").stdout
    assert berth("version", "-f", "{{.Server.APIVersion}}").stdout.strip() == \
        docker_py.DockerClient(base_url=f"unix://{daemon}").version()["ApiVersion"]
    env["BERTH_HOST"] = f"unix://{tmp_path}/absent.sock"
    r = berth("ps")
    assert r.returncode == 125 and "cannot reach the daemon" in r.stderr


def test_docker_py_networks(daemon: str) -> None:
    client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
    net = client.networks.create("api-net", labels={"a": "b"})
    try:
        assert net.attrs["Name"] == "api-net"
        assert "api-net" in [n.name for n in client.networks.list()]
        server = client.containers.run("busybox", ["sleep", "60"], detach=True,
                                       name="api-srv", network="api-net")
        try:
            out = client.containers.run("busybox", ["ping", "-c", "1", "-W", "2", "api-srv"],
                                        network="api-net", remove=True)
            assert b"1 packets received" in out
            other = client.containers.run("busybox", ["sleep", "60"], detach=True,
                                          name="api-other", network_mode="none")
            try:
                with pytest.raises(docker_py.errors.APIError):
                    net.connect(other)        # a --network none container cannot join
            finally:
                other.remove(force=True)
        finally:
            server.remove(force=True)
    finally:
        net.remove()
    with pytest.raises(docker_py.errors.NotFound):
        client.networks.get("api-net")


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this host")
def test_docker_cli_seed_002_registry_flow(daemon: str, tmp_path: Path) -> None:
    """Seed 002 through the docker CLI: tag, push to a private registry, check
    /v2/_catalog, remove, pull back, save/load, and a classic `docker build`."""
    import requests

    from sdk.registry import RegistryServer, load_config

    env = dict(os.environ, DOCKER_HOST=f"unix://{daemon}", DOCKER_CONFIG=str(tmp_path),
               DOCKER_BUILDKIT="0")

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                              timeout=120)

    cfg = load_config(overrides={"root": str(tmp_path / "registry"), "addr": "127.0.0.1:0"})
    with RegistryServer(cfg) as registry:
        name = f"{registry.address}/hello-world:latest"
        assert docker("tag", "busybox", name).returncode == 0
        r = docker("push", name)
        assert r.returncode == 0, r.stderr
        catalog = requests.get(f"{registry.url}/v2/_catalog", timeout=10).json()
        assert catalog == {"repositories": ["hello-world"]}
        assert docker("rmi", name).returncode == 0
        r = docker("pull", name)
        assert r.returncode == 0, r.stderr + r.stdout
        assert docker("run", "--rm", name, "echo", "pulled").stdout == "pulled\n"
    archive = tmp_path / "bb.tar"
    r = docker("save", "-o", str(archive), "busybox")
    assert r.returncode == 0 and archive.stat().st_size > 100_000, r.stderr
    assert docker("rmi", "-f", name).returncode == 0
    r = docker("load", "-i", str(archive))
    assert r.returncode == 0 and "busybox:latest" in r.stdout, r.stderr
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY hello /hello\nCMD ["cat", "/hello"]\n')
    (ctx / "hello").write_text("built\n")
    r = docker("build", "-t", "built:v1", str(ctx))
    assert r.returncode == 0, r.stderr + r.stdout
    assert docker("run", "--rm", "built:v1").stdout == "built\n"
    # docker-py's prune_builds reaches /build/prune; the tagged build stays usable
    client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
    pruned = client.images.prune_builds(all=True)
    assert set(pruned) == {"CachesDeleted", "SpaceReclaimed"} and pruned["CachesDeleted"]
    assert docker("run", "--rm", "built:v1").stdout == "built\n"


def test_docker_py_events(daemon: str) -> None:
    client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
    since = time.time()
    client.containers.run("busybox", ["true"], remove=True, network_mode="none")
    got = list(client.events(since=since, until=time.time() + 0.5, decode=True,
                             filters={"type": "container"}))
    assert [e["Action"] for e in got] == ["create", "start", "die", "destroy"]


@pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"),
                    reason="docker-registry (Debian package) not installed")
def test_docker_py_push_and_pull_with_x_registry_auth(engine: Engine, busybox: str,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-py's ``auth_config`` travels in X-Registry-Auth: the daemon has no stored
    credentials, so only the header can open the htpasswd-protected registry."""
    import bcrypt

    from tests.root.test_registry_client import start_registry, stop_registry

    monkeypatch.setenv("BERTH_AUTH_CONFIG", str(tmp_path / "no-auth.json"))
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    reg = start_registry(tmp_path / "private", htpasswd=f"alice:{hashed}\n")
    sock = tmp_path / "auth.sock"
    try:
        proc = start_daemon(engine, sock)
    except BaseException:
        stop_registry(reg)
        raise
    try:
        client = docker_py.DockerClient(base_url=f"unix://{sock}", version="auto")
        repo = f"{reg.host}/team/bb"
        assert client.images.get("busybox").tag(repo, "v1")
        good = {"username": "alice", "password": "s3cret", "serveraddress": reg.host}
        denied = list(client.api.push(repo, "v1", stream=True, decode=True,
                                      auth_config={"username": "alice", "password": "nope"}))
        assert "error" in denied[-1], denied
        out = list(client.api.push(repo, "v1", stream=True, decode=True, auth_config=good))
        assert "error" not in out[-1] and "digest: sha256:" in out[-1].get("status", ""), out
        client.images.remove(f"{repo}:v1")
        with pytest.raises(docker_py.errors.APIError):
            client.images.pull(repo, "v1")          # anonymous: refused
        img = client.images.pull(repo, "v1", auth_config=good)
        assert f"{repo}:v1" in img.tags
        token = {"identitytoken": "not-a-valid-token", "serveraddress": reg.host}
        events = list(client.api.pull(repo, "v1", stream=True, decode=True,
                                      auth_config=token))
        assert "error" in events[-1], events          # basic auth with a bad token
        with pytest.raises(docker_py.errors.APIError) as err:
            client.api.pull(repo, "v1", auth_config="not base64 json")  # type: ignore[arg-type]
        assert err.value.status_code == 400
    finally:
        stop_daemon(proc, sock)
        stop_registry(reg)


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this host")
def test_update_through_the_api(daemon: str) -> None:
    """`docker update` (which sends every field, zero meaning "unchanged") and docker-py's
    Container.update change a running container in place through berth daemon."""
    env = dict(os.environ, DOCKER_HOST=f"unix://{daemon}", DOCKER_CONFIG="/nonexistent")

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    r = docker("run", "-d", "--name", "upd-api", "--memory", "64m", "--memory-swap", "128m",
               "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        r = docker("update", "--memory", "96m", "--memory-swap", "256m", "--pids-limit", "40",
                   "--restart", "on-failure:2", "upd-api")
        assert (r.returncode, r.stdout.strip()) == (0, "upd-api"), r.stderr
        fmt = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}} " \
              "{{.HostConfig.RestartPolicy.Name}} {{.State.Status}}"
        assert docker("inspect", "-f", fmt, "upd-api").stdout.split() == \
            [str(96 << 20), str(256 << 20), "40", "on-failure", "running"]
        r = docker("update", "--memory", "2g", "upd-api")     # over the memory-swap limit
        assert r.returncode != 0 and "update the memoryswap at the same time" in r.stderr
        client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
        c = client.containers.get("upd-api")
        assert c.update(cpu_shares=512) == {"Warnings": []}
        c.reload()
        assert c.attrs["HostConfig"]["CpuShares"] == 512
        assert c.attrs["HostConfig"]["Memory"] == 96 << 20       # zero fields left alone
    finally:
        docker("rm", "-f", "upd-api")


def test_daemon_on_debian_12_aiohttp(engine: Engine, busybox: str, tmp_path: Path,
                                     aiohttp38: list[str]) -> None:  # noqa: F811
    """`berth daemon` on Debian 12's python3-aiohttp 3.8.4 stack (what the engine role can
    install from apt) answers docker-py and stops gracefully on SIGTERM."""
    sock = tmp_path / "b38.sock"
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path),
               PYTHONPATH=str(repo))
    proc = subprocess.Popen([*aiohttp38, "daemon", "-H", f"unix://{sock}", "--group", ""],
                            env=env, cwd=repo, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, \
                proc.stderr.read().decode() if proc.poll() is not None else "slow start"  # type: ignore[union-attr]
            time.sleep(0.05)
        client = docker_py.DockerClient(base_url=f"unix://{sock}", version="auto")
        assert client.ping()
        assert client.containers.run("busybox", ["echo", "on 3.8"], remove=True) == \
            b"on 3.8\n"
    finally:
        stop_daemon(proc, sock)
    assert proc.returncode == 0
