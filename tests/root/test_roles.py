"""roles/engine applied for real: a privileged berth container running Debian (made with
debootstrap, cached) is the managed host, reached through the berth.engine.berth
connection.  The role runs twice (the second run must change nothing), then the engine it
installed runs a container inside the instance (nested: overlay on the bind-mounted data
root).  Check mode on a fresh host is proven by the Molecule scenario (test_molecule.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Engine
from tests.e2e.ansible_run import (
    PLAYBOOK,
    ansible_env,
    build_wheel,
    collections_dir,
    run_playbook,
)
from tests.e2e.images import IMAGE_REF, debian_ansible_tar

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed"),
              pytest.mark.skipif(shutil.which("debootstrap") is None,
                                 reason="debootstrap is not installed")]

NAME = "berth-role-engine"


@pytest.fixture
def instance(engine: Engine, tmp_path: Path, busybox_tar: Path) -> Iterator[str]:
    """A running Debian instance whose /var/lib/berth is a host directory."""
    tar = debian_ansible_tar()
    engine.images.import_image(str(tar), repository=IMAGE_REF.split(":")[0],
                               tag=IMAGE_REF.split(":")[1])
    data = tmp_path / "instance-data"
    data.mkdir()
    c = engine.containers.run(
        IMAGE_REF, ["sleep", "infinity"], name=NAME, detach=True, privileged=True,
        network_mode="none", hostname=NAME,
        volumes={str(data): {"bind": "/var/lib/berth", "mode": "rw"},
                 str(busybox_tar): {"bind": "/srv/busybox.tar", "mode": "ro"}})
    yield c.name
    cid = c.id
    c.remove(force=True)
    # the nested engine's cgroups live under the instance's; none may be left behind
    left = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/**/{cid}*") if p.is_dir()]
    assert not left, left


def write_inventory(work: Path, engine: Engine) -> Path:
    inv = work / "hosts.ini"
    inv.write_text(
        "[engines]\n"
        f"{NAME} ansible_connection=berth.engine.berth ansible_berth_root={engine.root} "
        f"ansible_berth_config={engine.config_path} "
        "ansible_python_interpreter=/usr/bin/python3 ansible_berth_privileged=true\n")
    return inv


def test_engine_role_converges_idempotently_and_runs_containers(
        engine: Engine, instance: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    inv = write_inventory(work, engine)
    play = work / "site.yml"
    play.write_text(
        "- hosts: engines\n"
        "  gather_facts: true\n"
        "  vars:\n"
        "    berth_engine_apt_update_cache: false   # the image has the packages: offline\n"
        "    berth_engine_users: [alice]\n"
        "    berth_engine_insecure_registries: ['registry.test:5000']\n"
        "    berth_engine_log_opts: {max-size: 10m}\n"
        "    berth_engine_daemon_options: {live-restore: true}\n"
        f"    berth_engine_wheel: {build_wheel(work / 'wheel')}\n"
        "  roles:\n"
        "    - berth.engine.engine\n")
    env = ansible_env(collections_dir(tmp_path / "collections"), work / "home")

    start = time.monotonic()
    first = run_playbook(["-i", str(inv), str(play)], env, work)
    converge = time.monotonic() - start
    assert first.returncode == 0, first.out[-6000:] + first.err[-3000:]
    assert first.recap(NAME)["changed"] > 0

    second = run_playbook(["-i", str(inv), str(play)], env, work)
    assert second.returncode == 0, second.out[-6000:]
    assert second.recap(NAME)["changed"] == 0, second.changed_tasks()
    print(f"converge {converge:.1f}s, second run {time.monotonic() - start - converge:.1f}s")

    c = engine.containers.get(instance)

    def sh(cmd: str) -> str:
        # privileged: an exec into a privileged container gets the default seccomp
        # profile otherwise, which refuses the nested container's pivot_root
        res = c.exec_run(["/bin/sh", "-c", cmd], privileged=True)
        out = res.output.decode() if isinstance(res.output, bytes) else str(res.output)
        assert res.exit_code == 0, f"{cmd}: exit {res.exit_code}\n{out}"
        return out

    daemon_json = sh("cat /etc/berth/daemon.json")
    assert "registry.test:5000" in daemon_json and '"live-restore": true' in daemon_json
    assert "berth" in sh("id -nG alice")
    assert sh("readlink /usr/local/bin/berth").strip() == "/opt/berth/venv/bin/berth"
    assert sh("sysctl -n net.ipv4.ip_forward").strip() == "1"
    # the engine the role installed runs a container inside the instance
    sh("berth import /srv/busybox.tar busybox:latest")
    assert sh("berth run --rm busybox echo nested-ok").strip() == "nested-ok"
    assert "overlay" in sh("berth info --format '{{.Driver}}'")


def test_registry_role_deploys_idempotently(engine: Engine, instance: str,
                                            tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    inv = write_inventory(work, engine)
    play = work / "registry.yml"
    play.write_text(
        "- hosts: engines\n"
        "  gather_facts: true\n"
        "  vars:\n"
        "    berth_engine_apt_update_cache: false\n"
        f"    berth_engine_wheel: {build_wheel(work / 'wheel')}\n"
        "    berth_registry_hostname: registry.test\n"
        "    berth_registry_users: [{name: alice, password: s3cret}]\n"
        "  roles:\n"
        "    - berth.engine.registry\n")
    env = ansible_env(collections_dir(tmp_path / "collections"), work / "home")
    first = run_playbook(["-i", str(inv), str(play)], env, work)
    assert first.returncode == 0, first.out[-6000:] + first.err[-3000:]
    assert "Clients must trust its certificate" in first.out
    assert "/etc/berth/certs.d/registry.test:5000/ca.crt" in first.out
    second = run_playbook(["-i", str(inv), str(play)], env, work)
    assert second.returncode == 0, second.out[-6000:]
    assert second.recap(NAME)["changed"] == 0, second.changed_tasks()

    c = engine.containers.get(instance)

    def sh(cmd: str) -> str:
        res = c.exec_run(["/bin/sh", "-c", cmd])
        out = res.output.decode() if isinstance(res.output, bytes) else str(res.output)
        assert res.exit_code == 0, f"{cmd}: exit {res.exit_code}\n{out}"
        return out

    config = sh("cat /etc/berth/registry/config.yml")
    assert "/etc/berth/registry/htpasswd" in config and "registry.crt" in config
    assert sh("/opt/berth/venv/bin/python -c \"import bcrypt; n, h = open("
              "'/etc/berth/registry/htpasswd').read().strip().split(':', 1); "
              "print(n, bcrypt.checkpw(b's3cret', h.encode()))\"").strip() == "alice True"
    assert "registry.test" in sh("openssl x509 -noout -subject -ext subjectAltName "
                                 "-in /etc/berth/registry/certs/registry.crt")
    assert sh("stat -c %a /etc/berth/registry/certs/registry.key").strip() == "600"
    # the server runs in the background (no systemd in the instance) and listens
    sh("kill -0 $(cat /run/berth-registry.pid)")
    sh("python3 -c \"import socket; socket.create_connection(('127.0.0.1', 5000), 5)\"")
