"""The roles' systemd units, checked by systemd's own parser.

Neither unit runs in tests: the instances (berth containers) have no systemd, so there the
roles start nothing (engine) or a background process (registry).  What can be checked
here is that the units the roles render are ones systemd accepts without a warning
(`systemd-analyze verify`: every key known, ExecStart executable) and that their command
lines are ones berth's CLI accepts.  The templates are rendered by Ansible's template
module, as the roles do, with the venv of this checkout as berth_engine_venv.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.ansible_run import BIN, PLAYBOOK, REPO, ansible_env, collections_dir, run_playbook

pytestmark = [
    pytest.mark.skipif(not PLAYBOOK.exists(), reason="ansible-core is not installed"),
    pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                       reason="systemd-analyze is not installed"),
]

UNITS = {
    "berth.service": REPO / "roles/engine/templates/berth.service.j2",
    "berth-registry.service": REPO / "roles/registry/templates/berth-registry.service.j2",
}

PLAY = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    berth_engine_venv: {venv}
    berth_engine_config_path: /etc/berth/daemon.json
    berth_engine_group: berth
    berth_engine_socket: unix:///run/berth.sock
    berth_registry_port: 5000
    berth_registry_config_dir: /etc/berth/registry
  tasks:
    - name: Render the units
      ansible.builtin.template:
        src: "{{{{ item.value }}}}"
        dest: "{out}/{{{{ item.key }}}}"
        mode: "0644"
      loop: "{{{{ units | dict2items }}}}"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("units")
    out = tmp / "units"
    out.mkdir()
    (tmp / "play.yml").write_text(PLAY.format(venv=Path(sys.prefix), out=out))
    (tmp / "units.yml").write_text(
        "units:\n" + "".join(f"  {name}: {src}\n" for name, src in UNITS.items()))
    env = ansible_env(collections_dir(tmp / "collections"), tmp / "home")
    res = run_playbook(["-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
                        "-e", f"@{tmp / 'units.yml'}",
                        str(tmp / "play.yml")], env, tmp, timeout=120)
    assert res.returncode == 0, res.out[-3000:] + res.err[-2000:]
    return {name: str(out / name) for name in UNITS}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_accepts_the_unit(rendered: dict[str, str], unit: str) -> None:
    p = subprocess.run(["systemd-analyze", "verify", rendered[unit]], capture_output=True,
                       text=True, timeout=60)
    # verify reports unknown keys and bad values on stderr without failing: none allowed
    problems = [line for line in (p.stdout + p.stderr).splitlines()
                if Path(rendered[unit]).name in line or "rror" in line]
    assert p.returncode == 0 and not problems, p.stdout + p.stderr


@pytest.mark.parametrize(("unit", "command"), [("berth.service", ["daemon"]),
                                               ("berth-registry.service", ["registry", "serve"])])
def test_the_units_command_line_is_berths(rendered: dict[str, str], unit: str,
                                          command: list[str]) -> None:
    text = Path(rendered[unit]).read_text()
    argv = shlex.split(next(line for line in text.splitlines()
                            if line.startswith("ExecStart=")).split("=", 1)[1])
    assert argv[0] == str(BIN / "berth") and argv[1:1 + len(command)] == command
    usage = subprocess.run([argv[0], *command, "--help"], capture_output=True, text=True,
                           timeout=60).stdout
    for arg in argv[1 + len(command):]:
        if arg.startswith("-"):     # every option it passes is one the command has
            assert f"{arg} " in usage or f"{arg}," in usage, (arg, usage)
