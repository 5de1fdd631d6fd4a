"""Runs the berth.engine collection's integration targets with the real ansible-playbook.

Each target (tests/integration/targets/NAME/tasks/main.yml) is a role applied to localhost
with ``ansible_connection=local`` and this interpreter (ANSIBLE_PYTHON_INTERPRETER, so a
task may still pick another one), on an engine data root and
daemon.json in a temp dir (BERTH_ROOT/BERTH_CONFIG in the play's environment, which the
modules' ``engine_root``/``engine_config``/``path`` options fall back to).  The targets
assert their own idempotency and check-mode predictions; the driver checks that the play
ran without failures and removes whatever the engine still holds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
TARGETS = REPO / "tests" / "integration" / "targets"
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"
DOC = BIN / "ansible-doc"
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py")
                 if not p.name.startswith("_"))

needs_ansible = pytest.mark.skipif(not PLAYBOOK.exists(),
                                   reason="ansible-core is not installed in this venv")


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("collections")
    ns = base / "ansible_collections" / "berth"
    ns.mkdir(parents=True)
    (ns / "engine").symlink_to(REPO)
    return base


def ansible_env(collections: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "BERTH_"))}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_ROLES_PATH": str(TARGETS),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_GATHERING": "explicit",
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
    })
    return env


def run_target(name: str, collections: Path, work: Path, engine: Engine,
               extra: dict[str, str] | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
    play = work / f"{name}.yml"
    variables = {"berth_root": str(engine.root), "berth_config": str(engine.config_path),
                 "work_dir": str(work), **(extra or {})}
    lines = ["- hosts: localhost", "  connection: local", "  gather_facts: false",
             "  environment:", f"    BERTH_ROOT: {engine.root}",
             f"    BERTH_CONFIG: {engine.config_path}", "  vars:"]
    lines += [f"    {k}: {v!r}" for k, v in variables.items()]
    lines += ["  roles:", f"    - {name}"]
    play.write_text("\n".join(lines) + "\n")
    with subprocess.Popen(
            [str(PLAYBOOK), "-i", "localhost,", str(play)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work,
            env=ansible_env(collections, work / "ansible-home"), start_new_session=True) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)     # the playbook and its module processes
            out, err = p.communicate()
            pytest.fail(f"{name}: ansible-playbook timed out after {timeout}s\n{out[-4000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def recap(output: str, host: str = "localhost") -> dict[str, int]:
    m = re.search(rf"^{re.escape(host)}\s*:\s*(ok=.*)", output, re.M)
    assert m, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "work"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def failures(out: str) -> str:
    """The failed tasks' lines (with the task names) and the end of the output."""
    lines = out.splitlines()
    picked = []
    for i, line in enumerate(lines):
        if line.startswith(("fatal:", "failed:")) and \
                "...ignoring" not in "".join(lines[i + 1:i + 2]):
            picked += [lines[i - 1] if i else "", line[:3000]] + \
                [x[:300] for x in lines[i + 1:i + 12]]
    return "\n".join(picked)[-8000:] + "\n...\n" + out[-1500:]


def assert_played(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, failures(out)
    counts = recap(out)
    assert counts["failed"] == 0 and counts["unreachable"] == 0, out[-6000:]
    return counts


TARGET_NAMES = sorted(p.name for p in TARGETS.iterdir()
                      if (p / "tasks" / "main.yml").is_file()) if TARGETS.is_dir() else []


CGROUP_PARENT = "berth-ansible-test"
REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A plain registry (Debian's docker-registry) on 127.0.0.1, stopped by PID after."""
    import time
    import urllib.request

    if not os.path.exists(REGISTRY):
        pytest.skip("docker-registry is not installed")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'registry-data'}\n  delete: {{enabled: true}}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("docker-registry did not answer on /v2/")
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def free_subnets(count: int) -> dict[str, str]:
    """``net_subnet``, ``net_subnet2``, ...: random /24s in 10.128.0.0/9 that no route uses."""
    import secrets
    from ipaddress import IPv4Network

    from sdk.network.netlink import host_routes

    used = [net for net, _ in host_routes()]
    out: dict[str, str] = {}
    while len(out) < count:
        net = IPv4Network(f"10.{128 + secrets.randbelow(120)}.{secrets.randbelow(256)}.0/24")
        if not any(net.overlaps(u) for u in used) and str(net) not in out.values():
            out["net_subnet" + (str(len(out) + 1) if out else "")] = str(net)
    return out


def stop_pid_file(path: Path) -> None:
    """A registry supervisor a failed target left running (its own session): kill it."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        if "berth-registry-supervisor" in Path(f"/proc/{pid}/cmdline").read_text():
            os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def remove_networks(engine: Engine) -> None:
    """The bridges of networks a failed target left are host devices: remove them."""
    service = engine.networks.service
    for net in service.list():
        if net["name"] in ("bridge", "host", "none"):
            continue
        for cid in service.users(net):
            try:
                engine.tasks.remove(cid, force=True, volumes=True)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        try:
            service.remove(net["id"])
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """The targets' containers use their own cgroup parent; removed (when empty) at the end,
    after the engine fixture removed the containers."""
    yield CGROUP_PARENT
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parent = hierarchy / CGROUP_PARENT
        if parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                pass


@needs_ansible
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_integration_target(target: str, collections_path: Path, work: Path,
                            cgroup_parent: str, engine: Engine, busybox: str,
                            busybox_tar: Path, request: pytest.FixtureRequest) -> None:
    engine.images.import_image(
        str(busybox_tar), repository="appimg", tag="latest",
        changes=["ENV IMG_ENV=from-image", "LABEL from.image=yes", "WORKDIR /srv",
                 "VOLUME /imgvol", 'CMD ["sh"]'])
    extra = {"busybox_id": busybox, "cgroup_parent": cgroup_parent,
             "busybox_tar": str(busybox_tar)}
    if target == "container":
        extra["host_port"] = str(free_port())
    if target == "network":
        extra.update(free_subnets(2))
    if target == "registry":
        extra["reg_port"] = str(free_port())
        engine.images.get(busybox).tag(f"127.0.0.1:{extra['reg_port']}/bb", "1")
    if target == "registry_client":
        host = request.getfixturevalue("registry")
        engine.images.get(busybox).tag(f"{host}/bb", "1")
        extra["registry_host"] = host
    try:
        counts = assert_played(run_target(target, collections_path, work, engine, extra))
    finally:
        if target == "network":
            remove_networks(engine)
        if target == "registry":
            stop_pid_file(work / "registry.pid")
    assert counts["ok"] > 0


@needs_ansible
def test_connection_and_inventory(collections_path: Path, work: Path, cgroup_parent: str,
                                  engine: Engine, busybox: str) -> None:
    """The inventory plugin lists the engine's containers in keyed groups; the connection
    plugin runs raw commands and scripts (put_file) inside them."""
    inventory = work / "test.berth.yml"
    inventory.write_text(
        "plugin: berth.engine.containers\n"
        f"engine_root: {engine.root}\nengine_config: {engine.config_path}\n"
        "keyed_groups:\n  - key: berth_labels.app\n    prefix: app\n"
        "groups:\n  busybox: \"'busybox' in berth_image\"\n")
    env = ansible_env(collections_path, work / "ansible-home")
    env.update(BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    play = TARGETS / "connection" / "playbook.yml"
    proc = subprocess.run(
        [str(PLAYBOOK), "-i", "localhost,", "-i", str(inventory), "-e",
         f"ansible_python_interpreter={sys.executable}", "-e", f"cgroup_parent={cgroup_parent}",
         str(play)], capture_output=True, text=True, timeout=180, env=env, cwd=work)
    assert_played(proc)
    web = recap(proc.stdout, "conn-web")
    assert web["ok"] == 5 and web["failed"] == 0, proc.stdout[-3000:]
    assert "conn-db" not in re.findall(r"^(\S+)\s*: ok=", proc.stdout, re.M)


@needs_ansible
def test_connection_fetch_file(collections_path: Path, tmp_path: Path, cgroup_parent: str,
                               engine: Engine, busybox: str) -> None:
    """put_file/fetch_file/exec_command through the plugin's Python API (fetch needs a
    Python module in the container when driven by a playbook)."""
    sys.path.insert(0, str(collections_path))
    try:
        from ansible.playbook.play_context import PlayContext
        from ansible.plugins.loader import connection_loader
        from ansible.utils.collection_loader._collection_finder import (
            _AnsibleCollectionFinder,
        )

        finder = _AnsibleCollectionFinder(paths=[str(collections_path)])
        finder._install()
        container = engine.containers.run("busybox", ["sleep", "60"], detach=True,
                                          network_mode="none", cgroup_parent=cgroup_parent,
                                          name="fetchme")
        conn = connection_loader.get("berth.engine.berth", PlayContext())
        conn.set_options(direct={"remote_addr": "fetchme", "engine_root": str(engine.root),
                                 "engine_config": str(engine.config_path)})
        src = tmp_path / "in.bin"
        src.write_bytes(bytes(range(256)) * 64)
        conn.put_file(str(src), "/tmp/copied.bin")
        rc, out, err = conn.exec_command("wc -c < /tmp/copied.bin; cat >&2", in_data=b"stdin!")
        assert (rc, out.strip(), err) == (0, b"16384", b"stdin!")
        conn.fetch_file("/tmp/copied.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        from ansible.errors import AnsibleFileNotFound

        with pytest.raises(AnsibleFileNotFound, match="/nope"):
            conn.fetch_file("/nope", str(tmp_path / "nope"))
        assert not (tmp_path / "nope").exists()
        conn.close()
        container.remove(force=True)
    finally:
        sys.path.remove(str(collections_path))


@needs_ansible
def test_ansible_doc_renders_every_plugin(collections_path: Path, tmp_path: Path) -> None:
    """One ansible-doc run per plugin type (each run costs seconds of start-up)."""
    env = dict(ansible_env(collections_path, tmp_path), ANSIBLE_NOCOLOR="1")
    for kind, names in (("module", MODULES), ("connection", ["berth"]),
                        ("inventory", ["containers"])):
        proc = subprocess.run([str(DOC), "-t", kind, *(f"berth.engine.{n}" for n in names)],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "ERROR" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr
        text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)
        blocks = re.split(r"^> ", text, flags=re.M)[1:]
        # ansible-core 2.16 prints the name upper-cased, 2.17 as written
        shown = [re.search(r"berth\.engine\.\w+", b.splitlines()[0], re.I) for b in blocks]
        assert [m.group(0).lower() if m else None for m in shown] == \
            [f"berth.engine.{n}" for n in names], text[:500]
        for block in blocks:
            assert "OPTIONS" in block, block[:200]
            if kind == "module":
                for section in ("ATTRIBUTES", "EXAMPLES", "RETURN VALUES"):
                    assert section in block, f"{block.split()[1]}: no {section}"
