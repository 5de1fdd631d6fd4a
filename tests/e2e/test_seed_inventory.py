"""The seed scenario's playbooks against the SSH inventory docs/roles.md documents.

tests/root/test_two_host.py runs playbooks/site.yml and tests/e2e/two_host/seed.yml over
the berth connection; on real machines the same playbooks take an SSH inventory
(playbooks/inventory.example.ini).  Without machines to reach, this checks what Ansible
resolves from that inventory: which hosts each play targets (the build on the first
engine only, the pull on every other engine) and the registry address the engines get.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.ansible_run import BIN, PLAYBOOK, REPO, ansible_env, collections_dir, run_playbook

pytestmark = pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed")

INVENTORY = REPO / "playbooks" / "inventory.example.ini"
SEED = REPO / "tests" / "e2e" / "two_host" / "seed.yml"
NODES = [f"node{i}.example.net" for i in range(1, 6)]


def test_each_play_reaches_the_documented_hosts(tmp_path: Path) -> None:
    env = ansible_env(collections_dir(tmp_path / "collections"), tmp_path / "home")
    res = run_playbook(["--list-hosts", "-i", str(INVENTORY), str(SEED)], env, tmp_path,
                       timeout=120)
    assert res.returncode == 0, res.out[-3000:] + res.err[-3000:]
    plays = {}
    for block in re.split(r"\n\s*play #\d+ ", res.out)[1:]:
        name = block.split(": ", 1)[1].split("\t", 1)[0]
        plays[name] = sorted(re.findall(r"^\s+(\S+\.example\.net)$", block, re.M))
    assert plays == {
        "The private registry": ["reg1.example.net"],
        "The engines, trusting the registry": NODES,
        "Build, push and run seed 001's image on the first engine": NODES[:1],
        "Pull and run it on the fresh engines (docker pull REGISTRY:5000/hello-world)":
            NODES[1:],
    }, res.out


def test_the_engines_get_the_registry_address(tmp_path: Path) -> None:
    env = ansible_env(collections_dir(tmp_path / "collections"), tmp_path / "home")
    vars_file = SEED.parent / "seed_vars.yml"
    p = subprocess.run(
        [str(BIN / "ansible"), "node3.example.net", "-i", str(INVENTORY), "-e",
         f"@{vars_file}", "-m", "ansible.builtin.debug", "-a",
         '{"msg": "{{ seed_image }} {{ ansible_python_interpreter }}"}'],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert '"msg": "reg1.example.net:5000/hello-world /opt/berth/venv/bin/python"' in p.stdout
