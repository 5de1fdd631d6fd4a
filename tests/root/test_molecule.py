"""`molecule test` of roles/engine's default scenario: instances are berth containers
(create.yml/destroy.yml with berth.engine.container), the berth.engine.berth connection,
and testinfra verification through the berth backend (berth_testinfra)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from sdk import Engine
from tests.e2e.ansible_run import BIN, REPO, ansible_env, build_wheel, collections_dir
from tests.e2e.images import IMAGE_REF, debian_ansible_tar

MOLECULE = BIN / "molecule"

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200),
              pytest.mark.skipif(not MOLECULE.exists(), reason="molecule is not installed"),
              pytest.mark.skipif(shutil.which("debootstrap") is None,
                                 reason="debootstrap is not installed")]


def molecule_test(role: str, engine: Engine, tmp_path: Path, busybox_tar: Path) -> str:
    """`molecule test` in roles/ROLE against ENGINE; returns its output."""
    env = ansible_env(collections_dir(tmp_path / "collections"), tmp_path / "home")
    env.update({"BERTH_ROOT": str(engine.root), "BERTH_CONFIG": str(engine.config_path),
                "BERTH_MOLECULE_IMAGE_TAR": str(debian_ansible_tar()),
                "BERTH_MOLECULE_BUSYBOX_TAR": str(busybox_tar),
                "BERTH_MOLECULE_WHEEL": str(build_wheel(tmp_path / "wheel")),
                "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
                "HOME": str(tmp_path / "home")})
    env.pop("ANSIBLE_ROLES_PATH", None)
    start = time.monotonic()
    p = subprocess.run([str(MOLECULE), "test"], cwd=REPO / "roles" / role, env=env,
                       capture_output=True, text=True, timeout=900)
    print(f"molecule test ({role}): {time.monotonic() - start:.1f}s")
    out = p.stdout + p.stderr
    # the failing tasks first: Molecule's own log at the end would hide them
    failed = [line[:1500] for line in p.stdout.splitlines()
              if line.startswith(("fatal:", "failed:", "ERROR!")) or "FAILED" in line]
    assert p.returncode == 0, "\n".join(failed[-20:]) + "\n...\n" + out[-6000:]
    # destroy ran: nothing is left in the engine
    assert not engine.containers.list(all=True)
    assert IMAGE_REF.split(":")[0] in {t.split(":")[0] for i in engine.images.list()
                                       for t in i.tags}
    assert os.path.isdir(engine.root)
    return out


def test_molecule_test_engine_role(engine: Engine, tmp_path: Path, busybox_tar: Path) -> None:
    out = molecule_test("engine", engine, tmp_path, busybox_tar)
    # verified through the berth testinfra backend, not `ansible -m shell` per command
    assert "[berth://berth-molecule-engine] PASSED" in out, out[-4000:]


def test_molecule_test_registry_role(engine: Engine, tmp_path: Path,
                                     busybox_tar: Path) -> None:
    out = molecule_test("registry", engine, tmp_path, busybox_tar)
    # every verifier test ran through the berth backend and passed (6 with parameters)
    passed = re.findall(r"::(test_\w+)\[berth://berth-molecule-registry[^\]]*\] PASSED", out)
    assert len(passed) == 6 and "FAILED" not in out, out[-4000:]
    assert {"test_tls_certificate", "test_v2_requires_auth",
            "test_v2_with_credentials"} <= set(passed)
