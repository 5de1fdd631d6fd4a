"""``docker cp``: the archive endpoints, the SDK's get/put_archive and ``berth cp``.

Proof that everything stays inside the container: symlinks and ``..`` in the container
(or in an uploaded tar) never reach the host's files.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from sdk.errors import InvalidArgument, NotFound, PermissionDenied
from tests.root.conftest import Cli

pytestmark = pytest.mark.root
MARK = f"berth-cp-{os.getpid()}"


def tar_of(*entries: tuple[str, bytes | None] | tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tar.addfile(e)
                continue
            name, data = e
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o640
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def members(chunks: Iterator[bytes]) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f else (m.linkname.encode() if m.issym() else None)
    return out


def mounts_of(engine: Engine) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if str(engine.root) in line)


def holders() -> set[int]:
    """Our children (a stopped container's files are held open by one while in use)."""
    me = str(os.getpid())
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                    out.add(int(d.name))
            except (OSError, IndexError):
                pass
    return out


@pytest.fixture
def box(engine: Engine, busybox: str) -> Iterator[object]:
    c = engine.containers.create(
        "busybox", ["sh", "-c", "ln -s /etc/passwd /evil; ln -s ../../../../../etc /up; "
                    "mkdir /devs; mknod /devs/null c 1 3; "
                    "mkdir -p /data/sub; echo in > /data/sub/f; exec sleep 60"],
        name="cpbox", volumes={"cpvol": {"bind": "/vol", "mode": "rw"},
                               "cpro": {"bind": "/ro", "mode": "ro"}})
    yield c
    c.remove(force=True)


def test_sdk_put_and_get_stopped_then_running(engine: Engine, box: object) -> None:
    c = engine.containers.get("cpbox")
    mounts, children = mounts_of(engine), holders()
    assert c.put_archive("/tmp", tar_of(("d", None), ("d/a.txt", b"hello")))
    chunks, st = c.get_archive("/tmp/d")
    assert st["name"] == "d" and st["mode"] & (1 << 31)          # Go's ModeDir
    assert members(chunks) == {"d": None, "d/a.txt": b"hello"}
    # a volume of a stopped container is mounted where the container sees it
    assert c.put_archive("/vol", tar_of(("v.txt", b"vol")))
    assert (Path(engine.volumes.get("cpvol").attrs["Mountpoint"]) / "v.txt").read_bytes() \
        == b"vol"
    with pytest.raises(PermissionDenied):
        c.put_archive("/ro", tar_of(("x", b"x")))
    assert (mounts_of(engine), holders()) == (mounts, children), "nothing is left"
    started(c)
    chunks, st = c.get_archive("/data/.")
    assert members(chunks) == {".": None, "./sub": None, "./sub/f": b"in\n"}
    chunks, st = c.get_archive("/vol/v.txt")
    assert (members(chunks), st["size"]) == ({"v.txt": b"vol"}, 3)
    assert c.put_archive("/data/sub", tar_of(("g", b"running")))
    assert c.exec_run(["cat", "/data/sub/g"]).output == b"running"
    assert members(c.get_archive("/tmp/d/a.txt")[0]) == {"a.txt": b"hello"}
    # the root of a running container: its files, not its /proc or /sys
    names = members(c.get_archive("/")[0])
    assert "/bin/busybox" in names and "/proc" in names and "/proc/1" not in names
    with pytest.raises(PermissionDenied):
        c.put_archive("/ro", tar_of(("x", b"x")))


def started(c: object) -> None:
    """Start the box and wait for its command to make its links."""
    c.start()   # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while b"/data/sub/f" not in c.exec_run(["ls", "/data/sub/f"]).output:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_paths_stay_inside_the_container(engine: Engine, box: object) -> None:
    c = engine.containers.get("cpbox")
    started(c)
    host_passwd = Path("/etc/passwd").read_bytes()
    inside = c.exec_run(["cat", "/etc/passwd"]).output
    assert inside != host_passwd
    chunks, st = c.get_archive("/evil")          # the link itself, with its target
    assert (st["linkTarget"], members(chunks)) == ("/etc/passwd", {"evil": b"/etc/passwd"})
    for path in ("/up/passwd", "../../../../etc/passwd", "/../../etc/passwd", "/evil/."):
        if path.endswith("/."):
            with pytest.raises(NotFound):
                c.get_archive(path)
            continue
        assert members(c.get_archive(path)[0]) == {"passwd": inside}, path
    # writes through a symlink pointing "out" land in the container's /etc
    assert c.put_archive("/up", tar_of((MARK, b"x")))
    assert not Path("/etc", MARK).exists()
    assert c.exec_run(["cat", f"/etc/{MARK}"]).output == b"x"
    assert c.put_archive("/../../../tmp", tar_of((MARK, b"y")))
    assert not Path("/tmp", MARK).exists()
    # hostile tars: climbing out, writing through a symlink the tar made
    with pytest.raises(InvalidArgument):
        c.put_archive("/tmp", tar_of((f"../../../../tmp/{MARK}", b"z")))
    with pytest.raises(InvalidArgument):      # refused before anything is written
        c.put_archive("/tmp", tar_of(("first-ok", b"1"), ("../escape", b"2")))
    with pytest.raises(NotFound):
        c.get_archive("/tmp/first-ok")
    with pytest.raises(InvalidArgument, match="invalid tar archive"):
        c.put_archive("/tmp", b"\x1f\x8b\x08\x00garbage" * 10)
    link = tarfile.TarInfo("l")
    link.type, link.linkname = tarfile.SYMTYPE, "/tmp"
    with pytest.raises(InvalidArgument):
        c.put_archive("/", tar_of(link, (f"l/{MARK}.2", b"z")))
    hard = tarfile.TarInfo("h")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    with pytest.raises(InvalidArgument):     # resolves inside /tmp only: no such file
        c.put_archive("/tmp", tar_of(hard))
    assert not Path("/tmp", MARK).exists() and not Path("/tmp", MARK + ".2").exists()
    with pytest.raises(NotFound):
        c.get_archive("/no/such/file")
    with pytest.raises(InvalidArgument):
        c.put_archive("/etc/passwd", tar_of(("x", b"x")))   # not a directory
    with pytest.raises(InvalidArgument):
        c.get_archive("")


def test_berth_cp(engine: Engine, box: object, berth: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "f").write_text("file\n")
    (tmp_path / "one").write_text("one\n")
    os.chown(tmp_path / "one", 1234, 1234)
    started(engine.containers.get("cpbox"))
    assert berth("cp", str(src), "cpbox:/tmp/").returncode == 0
    assert berth("cp", str(tmp_path / "one"), "cpbox:/tmp/renamed").returncode == 0
    r = berth("cp", str(src / "."), "cpbox:/newdir")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    out.mkdir()
    for args in (("cpbox:/tmp/src", str(out)), ("cpbox:/tmp/renamed", str(out / "r")),
                 ("cpbox:/newdir/.", str(out / "copy")), ("-L", "cpbox:/evil", str(out))):
        r = berth("cp", *args)
        assert r.returncode == 0, (args, r.stderr)
    assert (out / "src" / "inner" / "f").read_text() == "file\n"
    assert (out / "r").read_text() == "one\n"
    assert (out / "copy" / "inner" / "f").read_text() == "file\n"
    assert b"root:" in (out / "evil").read_bytes() and not (out / "evil").is_symlink()
    assert "devs/null" in members(engine.containers.get("cpbox").get_archive("/devs")[0])
    assert berth("cp", "cpbox:/devs", str(out)).returncode == 0
    # no device node a container made lands on the host
    assert (out / "devs").is_dir() and not os.path.lexists(out / "devs" / "null")
    c = engine.containers.get("cpbox")
    c.stop(timeout=1)               # and from a stopped container
    st = members(c.get_archive("/tmp/renamed")[0])
    assert st == {"renamed": b"one\n"}
    with tarfile.open(fileobj=io.BytesIO(b"".join(c.get_archive("/tmp/renamed")[0]))) as t:
        assert (t.getmembers()[0].uid, t.getmembers()[0].gid) == (0, 0)   # root, as docker
    # - : a tar on stdout / stdin
    r = subprocess.run([*_berth_cmd(), "cp", "cpbox:/tmp/src/inner", "-"], env=berth.env,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert members(iter([r.stdout])) == {"inner": None, "inner/f": b"file\n"}
    r = subprocess.run([*_berth_cmd(), "cp", "-", "cpbox:/tmp"], env=berth.env,
                       input=tar_of(("stdin.txt", b"in")), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert members(c.get_archive("/tmp/stdin.txt")[0]) == {"stdin.txt": b"in"}
    r = berth("cp", "cpbox:/nothing", str(out))
    assert r.returncode == 1 and "Could not find the file /nothing" in r.stderr
    r = berth("cp", str(out), str(tmp_path))
    assert r.returncode != 0 and "at least one container" in r.stderr


def _berth_cmd() -> list[str]:
    from tests.root.conftest import BERTH

    return [BERTH]


docker_py = pytest.importorskip("docker")


DAEMON_PID: list[int] = []


@pytest.fixture
def daemon(engine: Engine, busybox: str, tmp_path: Path) -> Iterator[str]:
    from tests.root.test_api_daemon import start_daemon, stop_daemon

    sock = tmp_path / "berth.sock"
    proc = start_daemon(engine, sock)
    DAEMON_PID[:] = [proc.pid]
    yield str(sock)
    stop_daemon(proc, sock)


def children_of(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def test_leaving_a_download_early_releases_the_container(daemon: str, box: object) -> None:
    """A client that hangs up mid-archive: the walk stops and the stopped container's
    holder (and its mounts) goes away."""
    import socket

    before = children_of(DAEMON_PID[0])
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon)
    s.sendall(b"GET /v1.43/containers/cpbox/archive?path=/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    assert children_of(DAEMON_PID[0]) - before, "a holder keeps the rootfs mounted"
    s.close()
    deadline = time.monotonic() + 20
    while children_of(DAEMON_PID[0]) - before:
        assert time.monotonic() < deadline, "the holder was left behind"
        time.sleep(0.1)


def test_docker_py_archive(daemon: str, box: object) -> None:
    client = docker_py.DockerClient(base_url=f"unix://{daemon}", version="auto")
    c = client.containers.get("cpbox")
    assert c.put_archive("/tmp", tar_of(("api.txt", b"api")))
    bits, st = c.get_archive("/tmp/api.txt")
    assert st["name"] == "api.txt" and st["size"] == 3 and st["mode"] == 0o640
    assert members(bits) == {"api.txt": b"api"}
    started(c)
    bits, st = c.get_archive("/evil")
    assert st["linkTarget"] == "/etc/passwd"
    with pytest.raises(docker_py.errors.NotFound):
        c.get_archive("/nope")
    with pytest.raises(docker_py.errors.APIError) as err:
        c.put_archive("/etc/passwd", tar_of(("x", b"x")))
    assert err.value.status_code == 400
    with pytest.raises(docker_py.errors.APIError) as err:
        c.put_archive("/ro", tar_of(("x", b"x")))
    assert err.value.status_code == 403


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this host")
def test_docker_cli_cp(daemon: str, box: object, tmp_path: Path) -> None:
    env = dict(os.environ, DOCKER_HOST=f"unix://{daemon}", DOCKER_CONFIG=str(tmp_path))

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    started(box)
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x").write_text("x\n")
    (tmp_path / "file").write_text("data\n")
    for args in ((str(src), "cpbox:/tmp/"), (str(tmp_path / "file"), "cpbox:/tmp/named"),
                 (str(src / "."), "cpbox:/copied")):
        r = docker("cp", *args)
        assert r.returncode == 0, (args, r.stderr)
    out = tmp_path / "out"
    out.mkdir()
    for args in (("cpbox:/tmp/tree", str(out)), ("cpbox:/tmp/named", str(out / "n")),
                 ("cpbox:/copied/.", str(out / "c")), ("-L", "cpbox:/evil", str(out / "e"))):
        r = docker("cp", *args)
        assert r.returncode == 0, (args, r.stderr)
    assert (out / "tree" / "sub" / "x").read_text() == "x\n"
    assert (out / "n").read_text() == "data\n"
    assert (out / "c" / "sub" / "x").read_text() == "x\n"
    assert b"root:" in (out / "e").read_bytes()
    r = docker("cp", "cpbox:/nope", str(out))
    assert r.returncode != 0 and "Could not find the file" in r.stderr


def test_copy_uid_gid_takes_the_container_user(engine: Engine, busybox: str,
                                               berth: Cli, tmp_path: Path) -> None:
    from sdk.containers.archive import put_archive

    engine.containers.create("busybox", ["true"], name="cpuser", user="nobody")
    owned = tarfile.TarInfo("owned")
    owned.uid = owned.gid = 4321
    put_archive(engine, "cpuser", "/tmp", tar_of(owned))                    # as in the tar
    owned.name = "mapped"
    put_archive(engine, "cpuser", "/tmp", tar_of(owned), copy_uid_gid=True)  # -a
    (tmp_path / "f").write_text("f")
    assert berth("cp", "-a", str(tmp_path / "f"), "cpuser:/tmp/").returncode == 0
    assert berth("cp", str(tmp_path / "f"), "cpuser:/tmp/g").returncode == 0
    with tarfile.open(fileobj=io.BytesIO(b"".join(
            engine.containers.get("cpuser").get_archive("/tmp")[0]))) as tar:
        ids = {m.name: (m.uid, m.gid) for m in tar}
    assert ids["tmp/owned"] == (4321, 4321)
    assert ids["tmp/mapped"] == ids["tmp/f"] == (65534, 65534)
    assert ids["tmp/g"] == (0, 0)
