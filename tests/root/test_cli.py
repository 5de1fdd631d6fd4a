"""The `berth` command line as a user types it: output formats and exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import Cli, berth_cgroups, count_berth_mounts

pytestmark = pytest.mark.root


def test_run_output_and_exit_codes(berth: Cli) -> None:
    r = berth("run", "--rm", "--network", "none", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")
    assert berth("run", "--rm", "busybox", "sh", "-c", "exit 7").returncode == 7
    r = berth("run", "--rm", "busybox", "nope")
    assert r.returncode == 127 and "executable file not found" in r.stderr
    r = berth("run", "--rm", "busybox", "/etc/passwd")
    assert r.returncode == 126
    killed = berth("run", "--rm", "busybox", "sh", "-c", "sleep 9 & kill -9 $!; wait $!")
    assert killed.returncode == 137


@pytest.mark.parametrize("args, message", [
    (["run", "--memory", "12q", "busybox", "true"], "invalid suffix: 'q'"),
    (["run", "--cpus", "-1", "busybox", "true"], "Range of CPUs"),
    (["run", "--bogus", "busybox"], "unknown flag: --bogus"),
    (["run", "--name", "a b", "busybox", "true"], "Invalid container name"),
    (["run", "-v", "/definitely/missing:/x:ro", "busybox", "true"], "does not exist"),
    (["run", "Bad:Ref", "true"], "invalid reference format"),
    (["run", "busybox:nosuchtag", "true"], "Unable to find image"),
])
def test_bad_input_exits_125_with_one_line(berth: Cli, args: list[str], message: str) -> None:
    r = berth(*args)
    assert r.returncode == 125, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3
    assert berth("ps", "-aq").stdout == ""


def test_ps_formats_and_filters(berth: Cli) -> None:
    cid = berth("run", "-d", "--name", "web", "-l", "tier=front", "busybox",
                "sleep", "60").stdout.strip()
    berth("create", "--name", "idle", "busybox", "true")
    lines = berth("ps").stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    assert len(lines) == 2 and cid[:12] in lines[1] and "Up " in lines[1]
    assert len(berth("ps", "-a", "-q").stdout.split()) == 2
    assert berth("ps", "-a", "--filter", "status=created", "--format",
                 "{{.Names}}").stdout == "idle\n"
    assert berth("ps", "--filter", "label=tier=front", "-q").stdout.strip() == cid[:12]
    row = json.loads(berth("ps", "--format", "json").stdout)
    assert row["Names"] == "web" and row["State"] == "running"
    assert berth("ps", "-a", "--format", "table {{.Names}}\t{{.State}}").stdout.splitlines()[0] \
        .split() == ["NAMES", "STATE"]
    assert berth("inspect", "-f", "{{.State.Pid}}", "web").stdout.strip().isdigit()
    assert berth("ps", "--filter", "bogus=1").returncode != 0


def test_logs_exec_stop_rm(berth: Cli) -> None:
    berth("run", "-d", "--name", "talker", "busybox", "sh", "-c",
          "for i in 1 2 3; do echo line$i; done; echo err >&2; sleep 60")
    time.sleep(0.5)
    assert berth("logs", "talker").stdout == "line1\nline2\nline3\n"
    assert berth("logs", "talker").stderr == "err\n"
    tail = berth("logs", "--tail", "2", "talker")   # records of both streams count
    assert (tail.stdout, tail.stderr) == ("line3\n", "err\n")
    stamped = berth("logs", "-t", "talker").stdout.splitlines()[0]
    assert stamped.endswith(" line1") and stamped[:4].isdigit()
    r = berth("exec", "talker", "sh", "-c", "echo $HOSTNAME; exit 5")
    assert r.returncode == 5 and len(r.stdout.strip()) == 12
    assert berth("exec", "-e", "FOO=bar", "-w", "/tmp", "talker", "sh", "-c",
                 "echo $FOO; pwd").stdout == "bar\n/tmp\n"
    r = berth("rm", "talker")
    assert r.returncode == 1 and "stop the container" in r.stderr
    assert berth("stop", "-t", "1", "talker").stdout == "talker\n"
    assert berth("inspect", "-f", "{{.State.ExitCode}}", "talker").stdout == "137\n"
    assert berth("rm", "talker").stdout == "talker\n"
    assert berth("rm", "talker").returncode == 1


def test_diff_export_and_import(berth: Cli, tmp_path: Path) -> None:
    berth("run", "--name", "changer", "busybox", "sh", "-c",
          "mkdir /newdir && echo x > /newdir/f && rm /etc/os-release")
    diff = berth("diff", "changer").stdout.splitlines()
    assert "A /newdir" in diff and "A /newdir/f" in diff and "D /etc/os-release" in diff
    assert "C /etc" in diff
    out = tmp_path / "export.tar"
    assert berth("export", "-o", str(out), "changer").returncode == 0
    r = berth("import", "-c", "CMD [\"cat\", \"/newdir/f\"]", str(out), "changed:v1")
    assert r.returncode == 0 and r.stdout.startswith("sha256:")
    assert berth("run", "--rm", "changed:v1").stdout == "x\n"
    assert berth("run", "--rm", "changed:v1", "ls", "/etc/os-release").returncode == 1
    assert "changed" in berth("images").stdout
    hist = berth("history", "changed:v1").stdout.splitlines()
    assert hist[0].split()[0] == "IMAGE" and len(hist) == 2


def test_volume_commands(berth: Cli) -> None:
    assert berth("volume", "create", "--label", "a=b", "v1").stdout == "v1\n"
    assert berth("volume", "create", "-o", "type=tmpfs", "-o", "o=size=1m", "tv").returncode == 0
    ls = berth("volume", "ls").stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"] and len(ls) == 3
    info = json.loads(berth("volume", "inspect", "v1").stdout)[0]
    assert info["Labels"] == {"a": "b"} and info["Mountpoint"].endswith("/v1/_data")
    assert berth("run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c",
                 "grep ' /t ' /proc/mounts | cut -d' ' -f3").stdout == "tmpfs\n"
    assert berth("volume", "create", "-o", "bogus=1", "bad").returncode != 0
    assert berth("volume", "rm", "v1", "tv").returncode == 0
    assert berth("volume", "ls", "-q").stdout == ""


def test_images_rmi_tag(berth: Cli) -> None:
    assert berth("tag", "busybox", "localhost:5000/tools/bb:1.0").returncode == 0
    lines = berth("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(ln.startswith("localhost:5000/tools/bb") for ln in lines)
    assert berth("rmi", "localhost:5000/tools/bb:1.0").stdout == \
        "Untagged: localhost:5000/tools/bb:1.0\n"
    berth("create", "--name", "user", "busybox", "true")
    r = berth("rmi", "busybox")
    assert r.returncode == 1 and "container" in r.stderr
    berth("rm", "user")
    out = berth("rmi", "busybox").stdout
    assert "Untagged: busybox:latest" in out and "Deleted: sha256:" in out
    assert berth("images", "-q").stdout == ""


def test_info_version_df(berth: Cli) -> None:
    info = berth("info").stdout
    assert "Storage Driver: overlay" in info and "Cgroup Version" in info
    assert berth("version", "--format", "{{.Version}}").stdout.strip() == "0.1.0"
    df = berth("system", "df").stdout.splitlines()
    assert df[0].split()[0] == "TYPE" and df[1].startswith("Images")


def test_parallel_runs_and_no_leaks(berth: Cli) -> None:
    import concurrent.futures

    mounts, cgroups = count_berth_mounts(), len(berth_cgroups())
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda i: berth("run", "--rm", "busybox", "echo", str(i)),
                                range(20)))
    assert [r.returncode for r in results] == [0] * 20
    assert sorted(int(r.stdout) for r in results) == list(range(20))
    assert berth("ps", "-aq").stdout == ""
    assert count_berth_mounts() == mounts and len(berth_cgroups()) == cgroups


def test_parallel_create_same_name(berth: Cli) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: berth("create", "--name", "only", "busybox",
                                                "true"), range(8)))
    assert sorted(r.returncode for r in results) == [0] + [125] * 7
    assert len(berth("ps", "-aq").stdout.split()) == 1


def test_detached_exit_is_recorded_after_cli_exits(berth: Cli) -> None:
    """The supervisor outlives the CLI and records the exit (no sqlite state crosses fork)."""
    berth("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 0.3; exit 5")
    assert berth("wait", "short").stdout == "5\n"
    assert berth("inspect", "-f", "{{.State.Status}} {{.State.Error}}", "short").stdout \
        == "exited \n"


def test_attach_and_interactive_stdin(berth: Cli) -> None:
    berth("run", "-d", "-i", "--name", "cat", "busybox", "sh", "-c", "read x; echo got $x")
    r = berth("attach", "cat", input=b"hello\n")
    assert r.stdout == "got hello\n" and r.returncode == 0
    assert berth("logs", "cat").stdout == "got hello\n"


def test_tty_run_and_exec(berth: Cli) -> None:
    import shutil
    import subprocess

    if shutil.which("script") is None:
        pytest.skip("script(1) is needed to provide a terminal")
    from .conftest import BERTH

    cmd = f"{BERTH} run -it --rm busybox sh -c 'tty; echo $TERM'"
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                         env=berth.env, timeout=30).stdout
    assert "/dev/pts/0" in out and "xterm" in out
    berth("run", "-d", "-t", "--name", "ttybox", "busybox", "sleep", "30")
    cmd = f"{BERTH} exec -it ttybox sh -c 'tty; exit 4'"
    proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                          text=True, env=berth.env, timeout=30)
    assert "/dev/pts/" in proc.stdout and proc.returncode == 4


def test_prune_commands(berth: Cli) -> None:
    berth("create", "--name", "stale", "-v", "/anon", "busybox", "true")
    berth("run", "-d", "--name", "alive", "busybox", "sleep", "30")
    out = berth("container", "prune", "-f").stdout
    assert "Deleted Containers:" in out and "Total reclaimed space:" in out
    assert berth("ps", "-a", "--format", "{{.Names}}").stdout == "alive\n"
    assert berth("volume", "prune", "-f").returncode == 0
    assert berth("volume", "ls", "-q").stdout == ""
    r = berth("container", "prune", input=b"n\n")
    assert "Are you sure you want to continue? [y/N]" in r.stdout
    assert berth("ps", "-a", "-q").stdout.strip() != ""
    assert "Total reclaimed space" in berth("system", "prune", "-f").stdout
    assert berth("ps", "--format", "{{.Names}}").stdout == "alive\n"


def test_system_prune_repairs_a_killed_supervisor(berth: Cli, engine) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    berth("run", "-d", "--name", "orphan", "busybox", "sleep", "60")
    doc = engine.container_store.get("orphan")
    os.kill(doc["_berth"]["monitor"]["pid"], signal.SIGKILL)
    time.sleep(0.3)
    assert "Exited (137)" in berth("ps", "-a", "--format", "{{.Status}}").stdout
    assert berth("system", "prune", "-f").returncode == 0
    assert berth("ps", "-aq").stdout == ""
    from .conftest import berth_cgroups

    assert not [g for g in berth_cgroups() if doc["Id"] in g]
