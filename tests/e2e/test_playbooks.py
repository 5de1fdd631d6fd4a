"""The roles' entry points, Molecule playbooks and playbooks/ parse (ansible-playbook
--syntax-check, which also resolves the roles and modules through the collection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.ansible_run import PLAYBOOK, REPO, ansible_env, collections_dir, run_playbook

PLAYS = [REPO / "playbooks" / "site.yml", REPO / "tests" / "e2e" / "two_host" / "seed.yml",
         *sorted((REPO / "roles").glob("*/molecule/*/[ccd]*.yml"))]


@pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed")
@pytest.mark.parametrize("play", PLAYS, ids=lambda p: str(p.relative_to(REPO)))
def test_syntax(play: Path, tmp_path: Path) -> None:
    env = ansible_env(collections_dir(tmp_path / "collections"), tmp_path / "home")
    inv = REPO / "playbooks" / "inventory.example.ini"
    res = run_playbook(["--syntax-check", "-i", str(inv), str(play)], env, tmp_path,
                       timeout=120)
    assert res.returncode == 0, res.out[-3000:] + res.err[-3000:]
