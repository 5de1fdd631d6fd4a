"""plugins/plugin_utils/in_process.py: a module run in a fork of this process behaves as a
module run by a fresh interpreter would (exit codes, uncaught errors, signals, stdout and
stderr, environment, file descriptors, exit handlers)."""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("ansible")


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "berth_in_process_under_test", REPO / "plugins" / "plugin_utils" / "in_process.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


in_process = load()


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A package ``fakemods`` on sys.path to put module files in."""
    pkg = tmp_path / "fakemods"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    yield pkg
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("fakemods")]:
        del sys.modules[name]


def run(pkg: Path, name: str, source: str, args: dict | None = None,
        env: dict[str, str] | None = None) -> dict:
    (pkg / f"{name}.py").write_text(source)
    return in_process.run_forked(f"fakemods.{name}", args or {}, env or {})


def test_exit_json_reaches_stdout_with_the_args(modules: Path) -> None:
    res = run(modules, "echo", (
        "from ansible.module_utils.basic import AnsibleModule\n"
        "m = AnsibleModule(argument_spec={'word': {'type': 'str'}}, supports_check_mode=True)\n"
        "if __name__ == '__main__':\n"
        "    m.exit_json(changed=True, word=m.params['word'], check=m.check_mode)\n"),
        {"word": "hi", "_ansible_check_mode": True})
    assert res["rc"] == 0, res
    data = json.loads(res["stdout"])
    assert data["word"] == "hi" and data["check"] is True and data["changed"] is True
    assert data["invocation"]["module_args"] == {"word": "hi"}


def test_fail_json_exits_1(modules: Path) -> None:
    res = run(modules, "failing", (
        "from ansible.module_utils.basic import AnsibleModule\n"
        "AnsibleModule(argument_spec={}).fail_json(msg='no good')\n"))
    assert res["rc"] == 1 and json.loads(res["stdout"])["msg"] == "no good"


def test_argument_errors_as_ansible_reports_them(modules: Path) -> None:
    res = run(modules, "strict", (
        "from ansible.module_utils.basic import AnsibleModule\n"
        "AnsibleModule(argument_spec={'n': {'type': 'int'}})\n"), {"n": 1, "bogus": 1})
    msg = json.loads(res["stdout"])["msg"]
    assert res["rc"] == 1 and "bogus" in msg


def test_uncaught_error_is_a_traceback_on_stderr(modules: Path) -> None:
    res = run(modules, "boom", "raise RuntimeError('boom here')\n")
    assert res["rc"] == 1 and res["stdout"] == ""
    assert res["stderr"].startswith("Traceback") and "RuntimeError: boom here" in res["stderr"]


def test_exit_codes_and_signals(modules: Path) -> None:
    assert run(modules, "three", "import sys; sys.exit(3)\n")["rc"] == 3
    res = run(modules, "text", "import sys; sys.exit('gone')\n")
    assert res["rc"] == 1 and res["stderr"].strip() == "gone"
    assert run(modules, "killed", "import os; os.kill(os.getpid(), 9)\n")["rc"] == 128 + 9
    res = run(modules, "silent", "x = 1\n")
    assert res["rc"] == 1 and json.loads(res["stdout"])["failed"] is True


def test_environment_fds_and_exit_handlers(modules: Path, tmp_path: Path) -> None:
    """The task's environment is set; only fds 0-2 are open (+3 for what it imported);
    this process's exit handlers do not run in the child, the module's own do."""
    marker = tmp_path / "parent-atexit"
    atexit.register(marker.write_text, "ran")       # would run on a plain sys.exit
    held = os.open(os.devnull, os.O_RDONLY)
    try:
        res = run(modules, "probe", (
            "import atexit, json, os, sys\n"
            f"atexit.register(lambda: open({str(tmp_path / 'module-atexit')!r}, 'w').write('x'))\n"
            "print(json.dumps({'env': os.environ.get('PROBE'), 'fds': sorted(\n"
            "    int(f) for f in os.listdir('/proc/self/fd')), 'main': __name__,\n"
            "    'stdin': sys.stdin.read()}))\n"
            "sys.exit(0)\n"), env={"PROBE": "yes"})
    finally:
        os.close(held)
        atexit.unregister(marker.write_text)
    data = json.loads(res["stdout"])
    assert res["rc"] == 0 and data["env"] == "yes" and data["main"] == "__main__"
    assert data["stdin"] == ""
    assert set(data["fds"]) - {0, 1, 2, 3} <= {max(data["fds"])}    # listdir's own fd
    assert not marker.exists() and (tmp_path / "module-atexit").exists()
    assert os.environ.get("PROBE") is None


def test_same_interpreter() -> None:
    assert in_process.same_interpreter(sys.executable)
    assert not in_process.same_interpreter("/nonexistent/python")
    real = os.path.realpath(sys.executable)
    if os.path.dirname(real) != os.path.dirname(os.path.abspath(sys.executable)):
        assert not in_process.same_interpreter(real)    # a venv's base: another sys.path
