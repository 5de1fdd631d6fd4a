"""The daemon's warm helper imports, once, everything forwarded commands use: a forked
command that still imports modules pays for them on every run (what the warm path is for).
Each command runs in a fork of a process that did what the helper does (``_preload``),
against a real data root, and must import nothing new."""

from __future__ import annotations

import os
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


def test_forwarded_commands_import_nothing(engine: Engine, busybox: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_ROOT", str(engine.root))
    monkeypatch.setenv("BERTH_CONFIG", str(engine.config_path))
    from sdk.api import starter
    from sdk.cli import main

    starter._preload()
    engine.db.close()
    report = tmp_path / "imports.txt"
    for argv in COMMANDS:
        pid = os.fork()
        if pid == 0:     # the warm child: run the command, record what it had to import
            code = 1
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115
                before = set(sys.modules)
                code = main.main(list(argv))
                new = sorted(set(sys.modules) - before)
                with open(report, "a") as f:
                    f.write(f"{argv[0]} {code} {' '.join(new)}\n")
            finally:
                os._exit(0 if code == 0 else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, argv
    lines = report.read_text().splitlines()
    assert len(lines) == len(COMMANDS)
    assert [line for line in lines if len(line.split()) > 2] == []
