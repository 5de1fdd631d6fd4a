"""playbooks/quickstart.yml for real, twice, on a temp engine root and daemon.json: the
first run converges (registry, build, push, web container with a volume and a published
port, page and catalog checked by the play itself), the second changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.root.test_collection import (
    CGROUP_PARENT,
    PLAYBOOK,
    REPO,
    ansible_env,
    assert_played,
    free_port,
    needs_ansible,
    stop_pid_file,
)

pytestmark = pytest.mark.root


@pytest.fixture
def collections(tmp_path: Path) -> Path:
    ns = tmp_path / "collections" / "ansible_collections" / "berth"
    ns.mkdir(parents=True)
    (ns / "engine").symlink_to(REPO)
    return tmp_path / "collections"


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    yield CGROUP_PARENT
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        try:
            (hierarchy / CGROUP_PARENT).rmdir()
        except OSError:
            pass


@needs_ansible
def test_quickstart_playbook_converges_then_changes_nothing(
        engine: Engine, collections: Path, tmp_path: Path, cgroup_parent: str) -> None:
    work = tmp_path / "qs"
    work.mkdir()
    env = ansible_env(collections, tmp_path / "ansible-home")
    env.update(BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path))
    pid_file = work / "registry.pid"
    args = [str(PLAYBOOK), "-i", "localhost,", str(REPO / "playbooks" / "quickstart.yml"),
            "-e", f"qs_workdir={work}", "-e", f"qs_registry_port={free_port()}",
            "-e", f"qs_web_port={free_port()}", "-e", f"qs_registry_config_dir={work}/conf",
            "-e", f"qs_registry_pid_file={pid_file}", "-e", f"qs_cgroup_parent={cgroup_parent}"]
    try:
        first = assert_played(subprocess.run(args, capture_output=True, text=True, env=env,
                                             timeout=240, cwd=work))
        assert first["changed"] >= 5, first
        second_proc = subprocess.run(args, capture_output=True, text=True, env=env,
                                     timeout=240, cwd=work)
        second = assert_played(second_proc)
        assert second["changed"] == 0, second_proc.stdout[-4000:]
        config = engine.config_path.read_text()
        assert "insecure-registries" in config
        assert engine.containers.get("qs-web").attrs["State"]["Status"] == "running"
    finally:
        stop_pid_file(pid_file)
