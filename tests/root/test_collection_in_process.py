"""berth.engine modules on the controller run in a fork of the Ansible worker
(plugins/plugin_utils/in_process.py); elsewhere the normal way.  The same tasks run both
ways, from the same engine state, must give the same registered results: changed,
check-mode predictions, diffs, failures and their messages, argument errors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sdk import Engine
from tests.root.test_collection import (
    PLAYBOOK,
    ansible_env,
    assert_played,
    cgroup_parent,  # noqa: F401 - fixture
    collections_path,  # noqa: F401 - fixture
    needs_ansible,
)

pytestmark = pytest.mark.root

TASKS = """
    - name: volume, check mode with diff
      berth.engine.volume: {name: ipvol, labels: {a: b}}
      check_mode: true
      diff: true
      register: vol_check
    - name: volume
      berth.engine.volume: {name: ipvol, labels: {a: b}}
      register: vol_run
    - name: volume again
      berth.engine.volume: {name: ipvol, labels: {a: b}}
      register: vol_again
    - name: container, check mode with diff
      berth.engine.container: &web
        name: ipweb
        image: busybox:latest
        network_mode: none
        cgroup_parent: "{{ cgroup_parent }}"
        command: [sleep, "300"]
        env: {MODE: dev}
        labels: {app: web}
        volumes: ["ipvol:/data"]
        stop_timeout: 1
      check_mode: true
      diff: true
      register: c_check
    - name: container
      berth.engine.container: *web
      diff: true
      register: c_run
    - name: container again
      berth.engine.container: *web
      register: c_again
    - name: container with another env, check mode with diff
      berth.engine.container:
        <<: *web
        env: {MODE: prod}
      check_mode: true
      diff: true
      register: c_change
    - name: container with a missing image
      berth.engine.container: {name: ipnone, image: "nosuch:1", pull: never}
      ignore_errors: true
      register: c_noimage
    - name: an option the module does not have
      berth.engine.volume: {name: ipvol, bogus: 1}
      ignore_errors: true
      register: vol_bogus
    - name: an invalid choice
      berth.engine.container: {name: ipweb, state: sideways}
      ignore_errors: true
      register: c_choice
    - name: a hidden result
      berth.engine.volume: {name: ipvol}
      no_log: true
      register: vol_nolog
    - name: engine root from the task's environment
      berth.engine.volume: {name: ipother}
      environment: {BERTH_ROOT: "{{ other_root }}"}
      register: vol_other
    - name: container removed
      berth.engine.container: {name: ipweb, state: absent}
      register: c_gone
    - name: volumes removed
      berth.engine.volume: {name: "{{ item }}", state: absent}
      loop: [ipvol, ipvol]
      register: vol_gone
    - name: the other root's volume removed
      berth.engine.volume: {name: ipother, state: absent}
      environment: {BERTH_ROOT: "{{ other_root }}"}
    - name: results
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ dict(names | zip(names | map('extract', vars))) | to_nice_json }}"
      vars:
        names: [vol_check, vol_run, vol_again, c_check, c_run, c_again, c_change,
                c_noimage, vol_bogus, c_choice, vol_nolog, vol_other, c_gone, vol_gone]
"""

ID = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
PID = re.compile(r"/proc/\d+/")
# a traceback names the module's files where they ran from: the collection's directory, or
# the AnsiballZ payload zip under /tmp
SOURCE = re.compile(r'File "[^"]*?/ansible_collections/')
VOLATILE = {"Pid", "StartedAt", "FinishedAt", "Created", "CreatedAt", "ExitCode"}


def normalize(value: Any, key: str = "") -> Any:
    """Container IDs, times and PIDs differ between two runs, and where a traceback's
    files are (and whether its source lines show: not from a zip); nothing else may."""
    if key in VOLATILE and not isinstance(value, (dict, list)):
        return "<volatile>"
    if key == "exception" and isinstance(value, str):
        # the frames and the error; source lines show only where the file is readable
        value = "\n".join(line for line in value.splitlines()
                          if line.startswith("  File ") or not line.startswith(" "))
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        value = SOURCE.sub('File "<where>/ansible_collections/', value)
        return PID.sub("/proc/<pid>/", TIME.sub("<time>", ID.sub("<id>", value)))
    return value


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as ``path: a != b`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for k in sorted(set(a) | set(b), key=str)
                for line in differences(a.get(k, "<missing>"), b.get(k, "<missing>"),
                                        f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [line for i, (x, y) in enumerate(zip(a, b, strict=True)) for line in
                differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r:.300} != {b!r:.300}"]


def play(collections: Path, work: Path, engine: Engine, cgroup: str,
         in_process: bool) -> tuple[dict[str, Any], str]:
    out = work / f"results-{in_process}.json"
    book = work / f"play-{in_process}.yml"
    book.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        f"  environment: {{BERTH_ROOT: {engine.root}, BERTH_CONFIG: {engine.config_path}}}\n"
        f"  vars: {{berth_in_process: {str(in_process).lower()}, out: {out},\n"
        f"          cgroup_parent: {cgroup}, other_root: {work / 'other-root'}}}\n"
        "  tasks:" + TASKS)
    proc = subprocess.run([str(PLAYBOOK), "-vvv", "-i", "localhost,", str(book)],
                          capture_output=True, text=True, timeout=300, cwd=work,
                          env=ansible_env(collections, work / "ansible-home"))
    assert_played(proc)
    return json.loads(out.read_text()), proc.stdout


@needs_ansible
def test_in_process_results_match_normal_execution(
        collections_path: Path, tmp_path: Path, cgroup_parent: str,  # noqa: F811
        engine: Engine, busybox: str) -> None:
    fast, fast_log = play(collections_path, tmp_path, engine, cgroup_parent, True)
    slow, slow_log = play(collections_path, tmp_path, engine, cgroup_parent, False)
    # each way was really taken
    assert "in a fork of the worker" in fast_log and "runs the normal way" not in fast_log
    assert "runs the normal way (berth_in_process is false)" in slow_log
    assert "in a fork of the worker" not in slow_log
    # the results are meaningful ones, not two identical failures
    assert fast["vol_check"]["changed"] and not fast["vol_again"]["changed"]
    assert fast["c_run"]["actions"] == ["create container ipweb", "start container ipweb"]
    assert fast["c_change"]["changed"] and fast["c_change"]["diff"]
    assert fast["c_noimage"]["failed"] and "nosuch" in fast["c_noimage"]["msg"]
    assert "bogus" in fast["vol_bogus"]["msg"] and "sideways" in fast["c_choice"]["msg"]
    assert fast["vol_nolog"]["changed"] is False
    assert fast["vol_other"]["changed"]
    assert [r["changed"] for r in fast["vol_gone"]["results"]] == [True, False]
    assert not differences(normalize(fast), normalize(slow)), \
        "\n".join(differences(normalize(fast), normalize(slow)))
    assert not engine.volumes.list() and not engine.containers.list(all=True)
