"""Seed 002 across three hosts, end to end with ansible-playbook.

Three privileged berth containers from the cached Debian image (tests/e2e/images.py) share
an internal user network (nothing leaves it): `registry` gets roles/registry (TLS with a
self-signed certificate); `node` and `fresh` get roles/engine with the registry in
insecure-registries, in one play (playbooks/site.yml; two forks, so in parallel).
tests/e2e/two_host/seed.yml then builds seed 001's image on node, tags it
REGISTRY:5000/hello-world, pushes it, reads /v2/_catalog and runs it; last, `fresh`, which
never saw the build nor its base image, pulls it from the registry and runs it.  The
second run changes nothing on any host."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdk import Engine
from tests.e2e.ansible_run import (
    PLAYBOOK,
    REPO,
    ansible_env,
    build_wheel,
    collections_dir,
    run_playbook,
)
from tests.e2e.images import IMAGE_REF, debian_ansible_tar

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1500),
              pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed"),
              pytest.mark.skipif(shutil.which("debootstrap") is None,
                                 reason="debootstrap is not installed")]

SEED = REPO / "tests" / "e2e" / "two_host" / "seed.yml"
REGISTRY, NODE, FRESH = "berth-2h-registry", "berth-2h-node", "berth-2h-fresh"
HOSTS = (REGISTRY, NODE, FRESH)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 that overlaps no route of this host (nor another test's network)."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=True).stdout.split("\n")
    used = []
    for line in routes:
        word = line.split(" ", 1)[0]
        if word and word[0].isdigit():
            used.append(ipaddress.ip_network(word, strict=False))
    for third in range(40, 250, 7):
        net = ipaddress.ip_network(f"10.237.{third}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    pytest.skip("no free 10.237.x.0/24 subnet")


@dataclass
class Hosts:
    registry_ip: str
    node_ip: str
    fresh_ip: str
    network: str


@pytest.fixture
def hosts(engine: Engine, tmp_path: Path, busybox_tar: Path) -> Iterator[Hosts]:
    tar = debian_ansible_tar()
    repo, tag = IMAGE_REF.split(":")
    engine.images.import_image(str(tar), repository=repo, tag=tag)
    subnet = free_subnet()
    name = "b2h" + secrets.token_hex(3)
    # internal: the hosts reach each other, nothing outside the network
    net = engine.networks.create(name, ipam={"Config": [{"Subnet": str(subnet)}]},
                                 internal=True)
    ips = [str(subnet.network_address + n) for n in (10, 20, 30)]
    started = []
    try:
        for host, ip in zip(HOSTS, ips, strict=True):
            data = tmp_path / f"{host}-data"
            data.mkdir()
            volumes = {str(data): {"bind": "/var/lib/berth", "mode": "rw"}}
            if host == NODE:     # the base image's rootfs, for the build only
                volumes[str(busybox_tar)] = {"bind": "/srv/busybox.tar", "mode": "ro"}
            started.append(engine.containers.run(
                IMAGE_REF, ["sleep", "infinity"], name=host, hostname=host, detach=True,
                privileged=True, network=name, ip=ip, volumes=volumes))
        yield Hosts(*ips, network=name)
    finally:
        ids = [c.id for c in started]
        for c in started:
            c.remove(force=True)
        net.remove()
        assert not Path(f"/sys/class/net/br-{net.id[:12]}").exists()
        # the nested engine's cgroups live under the instance's; none may be left behind
        left = [str(p) for cid in ids for p in Path("/sys/fs/cgroup").glob(f"*/**/{cid}*")
                if p.is_dir()]
        assert not left, left


def write_inventory(work: Path, engine: Engine, hosts: Hosts, wheel: Path) -> Path:
    inv = work / "hosts.ini"
    inv.write_text(
        "[registry]\n"
        f"{REGISTRY} berth_registry_hostname={hosts.registry_ip} "
        f"berth_registry_address={hosts.registry_ip}\n"
        "[engines]\n"
        # the engine inside runs containers: exec with the privileged container's rights;
        # the first engine builds and pushes, the others pull
        f"{NODE} ansible_berth_privileged=true\n"
        f"{FRESH} ansible_berth_privileged=true\n"
        "[all:vars]\n"
        "ansible_connection=berth.engine.berth\n"
        f"ansible_berth_root={engine.root}\n"
        f"ansible_berth_config={engine.config_path}\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
        # execs are root already (site.yml's become would need sudo in the image)
        "ansible_become=false\n"
        # the image holds every package the roles install: no mirror needed
        "berth_engine_apt_update_cache=false\n"
        f"berth_engine_wheel={wheel}\n")
    return inv


def task_output(out: str, task: str) -> str:
    """What ansible-playbook printed for the task named TASK (up to the next task)."""
    m = re.search(rf"^TASK \[{re.escape(task)}\].*?(?=^TASK |^PLAY RECAP)", out, re.M | re.S)
    assert m, f"no task {task!r} in\n{out[-4000:]}"
    return m.group(0)


def test_seed_across_hosts_build_push_then_pull_on_a_fresh_host(
        engine: Engine, hosts: Hosts, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    inv = write_inventory(work, engine, hosts, build_wheel(work / "wheel"))
    env = ansible_env(collections_dir(tmp_path / "collections"), work / "home")
    args = ["-i", str(inv), str(SEED)]

    start = time.monotonic()
    first = run_playbook(args, env, work, timeout=900)
    took_first = time.monotonic() - start
    assert first.returncode == 0, first.out[-8000:] + first.err[-3000:]
    assert all(first.recap(host)["changed"] > 0 for host in HOSTS)
    # the registry role told clients what to configure; the engines got it
    assert "Clients must trust its certificate" in first.out
    # the fresh host pulled (a change) the image node built and ran it (the play's checks)
    assert f"changed: [{FRESH}]" in task_output(first.out, "Pull it from the registry")
    print(f"first run {took_first:.1f}s")
    second = run_playbook(args, env, work, timeout=900)
    took_second = time.monotonic() - start - took_first
    assert second.returncode == 0, second.out[-8000:] + second.err[-3000:]
    for host in HOSTS:
        assert second.recap(host)["changed"] == 0, second.changed_tasks()
    # the third step ran again and found the image present (not skipped)
    assert f"ok: [{FRESH}]" in task_output(second.out, "Pull it from the registry")
    print(f"second run {took_second:.1f}s")

    def sh(host: str, cmd: str) -> str:
        res = engine.containers.get(host).exec_run(["/bin/sh", "-c", cmd], privileged=True)
        out = res.output.decode() if isinstance(res.output, bytes) else str(res.output)
        assert res.exit_code == 0, f"{host}: {cmd}: exit {res.exit_code}\n{out}"
        return out

    reg = f"{hosts.registry_ip}:5000"
    image = f"{reg}/hello-world"
    for host in (NODE, FRESH):
        config = json.loads(sh(host, "cat /etc/berth/daemon.json"))
        assert config["insecure-registries"] == [reg]
    # the engines reach the registry over the network, over TLS (self-signed: not verified)
    catalog = sh(FRESH, "python3 -c \"import json, ssl, urllib.request; print(json.load("
                 f"urllib.request.urlopen('https://{reg}/v2/_catalog', "
                 "context=ssl._create_unverified_context(), timeout=10)))\"")
    assert "hello-world" in catalog
    # fresh has only what it pulled: not the build's base image, not the build context
    assert sh(FRESH, "berth images --format '{{.Repository}}'").split() == [image]
    sh(FRESH, "test ! -e /srv/hello && test ! -e /srv/busybox.tar")
    # the same image on both engines, recorded on fresh with the registry's digest
    inspect = "berth image inspect --format '{{.Id}} {{json .RepoDigests}}' " + image
    built_id = sh(NODE, inspect).split()[0]
    pulled_id, digests = sh(FRESH, inspect).split(maxsplit=1)
    assert pulled_id == built_id
    assert any(d.startswith(f"{image}@sha256:") for d in json.loads(digests)), digests
    assert sh(FRESH, f"berth run --rm {image}").strip() == "hello docker"
