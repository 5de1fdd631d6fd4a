"""The engine end to end through the SDK: real namespaces, overlay, cgroups, supervisors."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from sdk import ContainerError, Engine
from sdk.errors import CommandNotFound, Conflict, ContainerNotFound, InvalidArgument

from .conftest import berth_cgroups

pytestmark = pytest.mark.root


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def test_import_and_inspect_image(engine: Engine, busybox: str) -> None:
    img = engine.images.get("busybox")
    assert img.id == busybox and img.tags == ["busybox:latest"]
    assert img.attrs["Config"]["Cmd"] == ["sh"]
    assert img.attrs["RootFS"]["Layers"][0].startswith("sha256:")
    assert engine.images.get(busybox[7:19]).id == busybox


def test_run_foreground_returns_output(engine: Engine, busybox: str) -> None:
    out = engine.containers.run("busybox", ["sh", "-c", "echo hello; echo oops >&2"],
                                remove=True, network_mode="none")
    assert out == b"hello\n"
    assert engine.containers.list(all=True) == []


def test_run_nonzero_raises_container_error(engine: Engine, busybox: str) -> None:
    with pytest.raises(ContainerError) as info:
        engine.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3
    assert b"bad" in info.value.stderr


def test_command_not_found_is_127(engine: Engine, busybox: str) -> None:
    with pytest.raises(CommandNotFound):
        engine.containers.run("busybox", ["no-such-binary"], remove=True)
    assert engine.containers.list(all=True) == []


def test_isolation_basics(engine: Engine, busybox: str) -> None:
    out = engine.containers.run(
        "busybox", ["sh", "-c", "echo $$; hostname; cat /proc/self/status | grep CapEff; "
                    "ls /sys/class/net; cat /etc/hostname"],
        remove=True, hostname="boxy", network_mode="none").decode().split()
    assert out[0] == "1"
    assert out[1] == "boxy"
    assert out[3] == "00000000a80425fb"    # docker's 14 default capabilities
    assert out[4:] == ["lo", "boxy"]


def test_detached_lifecycle(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sh", "-c", "echo started; sleep 60"], detach=True,
                              name="life")
    assert c.status == "running" and c.attrs["State"]["Pid"] > 0
    wait_for(lambda: b"started" in c.logs())
    assert [x.name for x in engine.containers.list()] == ["life"]
    t0 = time.monotonic()
    c.stop(timeout=1)      # sh as pid 1 ignores SIGTERM: killed after 1 s
    assert time.monotonic() - t0 < 5
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    assert engine.containers.list() == []
    assert c.attrs["State"]["FinishedAt"] > c.attrs["State"]["StartedAt"]
    c.start()
    assert c.status == "running"
    c.kill()
    assert c.wait(timeout=10)["StatusCode"] == 137
    c.remove()
    with pytest.raises(ContainerNotFound):
        engine.containers.get("life")
    assert not [g for g in berth_cgroups() if c.id in g]


def test_stop_signal_and_exit_code_143(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sh", "-c", "trap 'exit 143' TERM; sleep 60 & wait"],
                              detach=True)
    time.sleep(0.3)
    c.stop(timeout=10)
    assert c.attrs["State"]["ExitCode"] == 143
    c.remove()


def test_exec_and_pause(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True, user="app")
    result = c.exec_run(["sh", "-c", "id -u; echo $HOME; exit 4"])
    assert result.exit_code == 4
    assert result.output.decode().split() == ["1000", "/home/app"]
    assert c.exec_run("id -u", user="root").output == b"0\n"
    c.pause()
    c.reload()
    assert c.status == "paused"
    with pytest.raises(Conflict):
        c.exec_run("true")
    c.unpause()
    c.reload()
    assert c.status == "running"
    c.remove(force=True)


def test_restart_policy_on_failure(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sh", "-c", "exit 2"], detach=True,
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    wait_for(lambda: (c.reload(), c.attrs["RestartCount"] == 2 and c.status == "exited")[1])
    assert c.attrs["State"]["ExitCode"] == 2
    c.remove()


def test_auto_remove_detached(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["true"], detach=True, remove=True)
    wait_for(lambda: not engine.containers.list(all=True))
    assert not (engine.root / "containers" / c.id).exists()


def test_named_and_anonymous_volumes(engine: Engine, busybox: str, tmp_path: Path) -> None:
    engine.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], remove=True,
                          volumes=["keep:/data", "/scratch"])
    assert engine.volumes.get("keep").name == "keep"
    out = engine.containers.run("busybox", ["cat", "/data/f"], remove=True,
                                volumes={"keep": {"bind": "/data", "mode": "ro"}})
    assert out == b"kept\n"
    with pytest.raises(ContainerError):
        engine.containers.run("busybox", ["sh", "-c", "echo x > /data/g"], remove=True,
                              volumes=["keep:/data:ro"])
    # anonymous volumes went away with --rm, the named one stays
    assert [v.name for v in engine.volumes.list()] == ["keep"]
    host = tmp_path / "hostdir"
    engine.containers.run("busybox", ["sh", "-c", "echo hi > /mnt/x"], remove=True,
                          volumes=[f"{host}:/mnt"])
    assert (host / "x").read_text() == "hi\n"
    with pytest.raises(Conflict):
        c = engine.containers.create("busybox", "true", volumes=["keep:/d"])
        engine.volumes.get("keep").remove()
    c.remove()
    engine.volumes.get("keep").remove()


def test_image_volume_copy_up(engine: Engine, busybox: str, busybox_tar: Path) -> None:
    engine.images.import_image(str(busybox_tar), repository="web", tag="1",
                               changes=["VOLUME /var/www", 'CMD ["sh"]'])
    c = engine.containers.create("web:1", ["cat", "/var/www/index.html"])
    c.start()
    assert c.wait(timeout=10)["StatusCode"] == 0
    assert c.logs() == b"hello from berth\n"
    vol = [m for m in c.attrs["Mounts"] if m["Destination"] == "/var/www"][0]
    assert Path(vol["Source"], "index.html").read_text() == "hello from berth\n"
    c.remove(v=True)
    assert engine.volumes.list() == []


def test_volumes_from_backup_recipe(engine: Engine, busybox: str, tmp_path: Path) -> None:
    """Seed 004's recipe: back up a data container's volume with --volumes-from."""
    engine.containers.run("busybox", ["sh", "-c", "echo precious > /dbdata/db"],
                          name="dbdata", volumes=["/dbdata"])
    backup = tmp_path / "backup"
    backup.mkdir()
    engine.containers.run("busybox", ["tar", "cf", "/backup/backup.tar", "/dbdata"],
                          remove=True, volumes_from=["dbdata"], volumes=[f"{backup}:/backup"])
    engine.containers.run("busybox", ["sh", "-c", "echo restored-vol > /dbdata/x"],
                          name="dbstore2", volumes=["/dbdata"])
    engine.containers.run("busybox", ["sh", "-c", "cd /dbdata && tar xf /backup/backup.tar "
                                      "--strip 1 && cat /dbdata/db"],
                          remove=True, volumes_from=["dbstore2"], volumes=[f"{backup}:/backup"])
    out = engine.containers.run("busybox", ["cat", "/dbdata/db"], remove=True,
                                volumes_from=["dbstore2"])
    assert out == b"precious\n"


def test_resource_limits_in_cgroup(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="64m",
                              pids_limit=50, nano_cpus=500_000_000, cpu_shares=512)
    base = Path("/sys/fs/cgroup")
    if (base / "memory").is_dir():          # v1 / hybrid
        assert (base / "memory/berth" / c.id / "memory.limit_in_bytes").read_text().strip() \
            == str(64 * 1024 * 1024)
        assert (base / "pids/berth" / c.id / "pids.max").read_text().strip() == "50"
        assert (base / "cpu/berth" / c.id / "cpu.cfs_quota_us").read_text().strip() \
            == "50000"
    stats = c.stats(stream=False)
    assert stats["pids_stats"]["current"] >= 1
    c.remove(force=True)


def test_oom_killed(engine: Engine, busybox: str) -> None:
    from sdk import events

    t0 = time.time()
    c = engine.containers.run(
        "busybox", ["sh", "-c", "x=a; while true; do x=$x$x; done"], detach=True,
        mem_limit="16m")
    assert c.wait(timeout=60)["StatusCode"] == 137
    c.reload()
    assert c.attrs["State"]["OOMKilled"] is True
    actions = [m["Action"] for m in events.stream(engine.db, since=t0, follow=False,
                                                  filters={"container": [c.id]})]
    assert actions[-2:] == ["oom", "die"]          # as dockerd reports it
    c.remove()


def test_healthcheck_states(engine: Engine, busybox: str) -> None:
    hc = {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 200_000_000,
          "Timeout": 1_000_000_000, "Retries": 2}
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True, healthcheck=hc)
    wait_for(lambda: (c.reload(), c.health == "unhealthy")[1])
    c.exec_run("touch /tmp/ok")
    wait_for(lambda: (c.reload(), c.health == "healthy")[1])
    log = c.attrs["State"]["Health"]["Log"]
    assert 1 <= len(log) <= 5 and log[-1]["ExitCode"] == 0
    c.remove(force=True)


def test_supervisor_killed_is_repaired(engine: Engine, busybox: str) -> None:
    c = engine.containers.run("busybox", ["sleep", "60"], detach=True)
    raw = engine.container_store.load(c.id)
    monitor = raw["_berth"]["monitor"]["pid"]
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{c.attrs['State']['Pid']}"))
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    assert not [g for g in berth_cgroups() if c.id in g]
    c.remove()


def test_bad_input_changes_nothing(engine: Engine, busybox: str, tmp_path: Path) -> None:
    before = (len(engine.containers.list(all=True)), len(engine.volumes.list()))
    bad = [
        dict(name="bad name!"),
        dict(mem_limit="12q"),
        dict(nano_cpus=-1),
        dict(volumes=[f"{tmp_path}/missing:/x:ro"]),
        dict(volumes=["newvol:/x", "relative"]),
        dict(restart_policy="sometimes"),
        dict(cap_add=["NOT_A_CAP"]),
    ]
    for kwargs in bad:
        with pytest.raises(InvalidArgument):
            engine.containers.create("busybox", "true", **kwargs)
    assert (len(engine.containers.list(all=True)), len(engine.volumes.list())) == before
    assert not (tmp_path / "missing").exists()
    cdir = engine.root / "containers"
    assert not cdir.exists() or list(cdir.iterdir()) == []


def test_name_conflict(engine: Engine, busybox: str) -> None:
    engine.containers.create("busybox", "true", name="twin")
    with pytest.raises(Conflict, match="already in use"):
        engine.containers.create("busybox", "true", name="twin")
    assert len(engine.containers.list(all=True)) == 1


def test_seccomp_blocks_namespace_and_mount_syscalls(engine: Engine, busybox: str) -> None:
    script = ("grep Seccomp: /proc/self/status | tr -d '\\t'; unshare -n true && echo unshared; "
              "mount -t tmpfs t /tmp && echo mounted; exit 0")
    out = engine.containers.run("busybox", ["sh", "-c", script], remove=True)
    assert out == b"Seccomp:2\n"
    out = engine.containers.run("busybox", ["sh", "-c", script], remove=True,
                                security_opt=["seccomp=unconfined"], cap_add=["SYS_ADMIN"])
    assert out == b"Seccomp:0\nunshared\nmounted\n"
    with pytest.raises(InvalidArgument, match="custom seccomp profiles"):
        engine.containers.run("busybox", ["true"], remove=True,
                              security_opt=["seccomp=/tmp/profile.json"])


def test_masked_and_readonly_paths(engine: Engine, busybox: str) -> None:
    out = engine.containers.run("busybox", ["sh", "-c",
                                            "cat /proc/kcore | wc -c; ls /proc/acpi | wc -l; "
                                            "echo 1 > /proc/sys/kernel/domainname || echo ro"],
                                remove=True)
    assert out.split() == [b"0", b"0", b"ro"]
    out = engine.containers.run("busybox", ["sh", "-c", "touch /x || echo rofs"], remove=True,
                                read_only=True)
    assert out == b"rofs\n"


def test_detached_container_starts_with_default_signals(engine: Engine, busybox: str) -> None:
    """The supervisor ignores SIGINT/SIGHUP/SIGPIPE for itself; its containers must not."""
    c = engine.containers.run("busybox", ["grep", "-E", "SigIgn|SigBlk", "/proc/self/status"],
                              detach=True)      # no shell: ash itself ignores SIGQUIT
    assert c.wait(timeout=10)["StatusCode"] == 0
    lines = c.logs().decode().split("\n")
    assert all(int(line.split()[1], 16) == 0 for line in lines if line), lines
    c.remove()


def test_detached_supervisor_keeps_none_of_the_callers_fds(engine: Engine, busybox: str) -> None:
    """A caller that waits for EOF on a pipe it gave `berth run -d` (as shells and CI
    runners do) gets it when the CLI exits, not when the container ends."""
    import select
    import subprocess
    import sys

    r, w = os.pipe()
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    env.pop("BERTH_HOST", None)
    berth = str(Path(sys.executable).with_name("berth"))
    proc = subprocess.run([berth, "run", "-d", "--name", "fdkeep", "--network", "none",
                           "busybox", "sleep", "60"], env=env, pass_fds=(w,),
                          capture_output=True, text=True, timeout=60)
    os.close(w)
    try:
        assert proc.returncode == 0, proc.stderr
        ready, _, _ = select.select([r], [], [], 10)
        assert ready and os.read(r, 1) == b""        # EOF: nobody else holds the pipe
        c = engine.containers.get("fdkeep")
        assert c.status == "running"
    finally:
        os.close(r)
