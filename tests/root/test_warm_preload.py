"""The daemon's warm helper imports, once, everything forwarded commands use: a forked
command that still imports modules pays for them on every run (what the warm path is for).

A fresh interpreter does what the helper does before it serves (imports the runner and
the CLI, opens the engine, ``_preload``); each command then runs in a fork of it against
a real data root, and must import nothing new."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdk import Engine

pytestmark = pytest.mark.root

COMMANDS = [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["run", "--rm", "busybox", "true"],
    ["run", "-d", "--name", "warm1", "--network", "none", "busybox", "sleep", "30"],
    ["ps", "-a"], ["images"], ["inspect", "busybox"], ["volume", "ls"], ["network", "ls"],
    ["logs", "warm1"], ["exec", "warm1", "true"], ["update", "--pids-limit", "9", "warm1"],
    ["stop", "-t", "0", "warm1"], ["rm", "warm1"], ["version"], ["info"],
]

SCRIPT = r"""
import json, os, sys
from sdk.api import cli_runner, starter  # noqa: F401 - what the helper imports
from sdk.cli import main
from sdk.engine import Engine

engine = Engine(root=os.environ["BERTH_ROOT"], config=os.environ["BERTH_CONFIG"])
engine.db.conn
engine.db.close()
starter._preload()
results = []
report = os.environ["REPORT"]
for argv in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys.stdout = open(os.devnull, "w")
            before = set(sys.modules)
            code = main.main(list(argv))
            with open(report, "w") as f:
                json.dump(sorted(set(sys.modules) - before), f)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    with open(report) as f:
        imported = json.load(f)
    os.unlink(report)
    results.append({"argv": argv, "code": os.waitstatus_to_exitcode(status),
                    "imported": imported})
print(json.dumps(results))
"""


def test_forwarded_commands_import_nothing(engine: Engine, busybox: str,
                                           tmp_path: Path) -> None:
    engine.db.close()
    env = dict(os.environ, BERTH_ROOT=str(engine.root), BERTH_CONFIG=str(engine.config_path),
               REPORT=str(tmp_path / "imports.json"))
    env.pop("BERTH_HOST", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(COMMANDS)], env=env,
                         capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.splitlines()[-1])
    assert [r["code"] for r in results] == [0] * len(COMMANDS), results
    assert {" ".join(r["argv"]): r["imported"] for r in results if r["imported"]} == {}
