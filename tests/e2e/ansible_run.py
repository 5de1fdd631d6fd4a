"""Run ansible-playbook against berth containers from tests (roles, e2e, Molecule)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOK = BIN / "ansible-playbook"


def collections_dir(base: Path) -> Path:
    """``base`` with ansible_collections/berth/engine -> the repository (the collection)."""
    ns = base / "ansible_collections" / "berth"
    ns.mkdir(parents=True, exist_ok=True)
    link = ns / "engine"
    if not link.exists():
        link.symlink_to(REPO)
    return base


def build_wheel(out: Path) -> Path:
    """The berth-engine wheel roles/engine would build, made once for a test: the role then
    copies this file (other work on sdk/ during a test cannot change it between runs)."""
    p = subprocess.run([sys.executable, str(REPO / "roles/engine/files/build_wheel.py"),
                        str(REPO), str(out)], capture_output=True, text=True, check=True)
    return Path(p.stdout.strip().splitlines()[-1])


def ansible_env(collections: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "BERTH_"))}
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
    })
    return env


@dataclass
class PlayResult:
    returncode: int
    out: str
    err: str

    def recap(self, host: str) -> dict[str, int]:
        m = re.search(rf"^{re.escape(host)}\s*:\s*(ok=.*)", self.out, re.M)
        assert m, self.out[-3000:] + self.err[-2000:]
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (for assertion messages)."""
        names, task = [], ""
        for line in self.out.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line
            elif line.startswith("changed:"):
                names.append(f"{task} {line[:200]}")
        return names


def run_playbook(args: list[str], env: dict[str, str], cwd: Path,
                 timeout: float = 600) -> PlayResult:
    with subprocess.Popen([str(PLAYBOOK), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
                          start_new_session=True) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)     # the playbook and its workers
            out, err = p.communicate()
            raise AssertionError(f"ansible-playbook timed out after {timeout}s\n{out[-4000:]}")
    return PlayResult(p.returncode, out, err)
