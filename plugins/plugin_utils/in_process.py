# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Run a berth.engine module in a fork of the Ansible worker when the task runs on the
controller itself.

Why: on a local connection every module call costs Ansible ~0.3 s before the module does
anything (an AnsiballZ zip built, a shell and a new interpreter started, the zip's
``ansible.module_utils.basic`` compiled again with no bytecode cache).  When the task's
host *is* the controller, with the controller's own interpreter and no become, the
worker process already holds that interpreter with Ansible imported, so the module's
code can run in a ``fork()`` of it: the same arguments (``_update_module_args``), the
same environment (the task's ``environment``), the same entry point (the module file run
as ``__main__`` with ``basic._ANSIBLE_ARGS`` set, as AnsiballZ does), its stdout, stderr
and exit status parsed by the same ``_parse_returned_data``.  Loop items of one task run
in the same worker, so what the first item imported (the SDK's services) is imported
into the worker once and shared by the later items' forks.

Anything else takes Ansible's normal path unchanged: another connection plugin (ssh,
``berth``, ...), become, async, an interpreter other than the controller's (or one still
to be discovered), ``keep_remote_files``, or ``berth_in_process: false`` in the task's
variables.
"""

from __future__ import annotations

import atexit
import builtins
import importlib
import importlib.util
import io
import json
import os
import signal
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any

from ansible import constants as C
from ansible.executor.interpreter_discovery import InterpreterDiscoveryRequiredError
from ansible.executor.module_common import _get_shebang
from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

display = Display()

COLLECTION = "berth.engine."
SWITCH = "berth_in_process"        # task variable: false forces Ansible's normal path
# what a module's child may have imported that later forks of the same worker reuse
SHARED_PREFIXES = ("sdk.", "ansible.module_utils.",
                   "ansible_collections.berth.engine.plugins.module_utils.")
_learned: set[str] = set()     # per worker process (one task, all its loop items)


def same_interpreter(path: str) -> bool:
    """``path`` starts this very Python: the same file in the same directory (a venv's
    ``bin/python`` and ``bin/python3`` are one; the base interpreter a venv links to is
    not, its ``sys.path`` differs)."""
    here = os.path.abspath(sys.executable)
    there = os.path.abspath(path)
    if os.path.dirname(here) != os.path.dirname(there):
        return False
    try:
        return os.path.samefile(here, there)
    except OSError:
        return False


def preload(names: Sequence[str]) -> None:
    """Import ``names`` into this (worker) process; a name that fails is left to the
    module's child, which reports the error as the normal path would."""
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception:   # noqa: BLE001 - the child meets the same error and reports it
            continue


def _memfd(name: str) -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create(name)
    import tempfile

    fd, path = tempfile.mkstemp(prefix=f"berth-{name}-")
    os.unlink(path)
    return fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _reset_signals() -> None:
    """The dispositions a freshly exec'd Python has: handlers the worker installed are
    gone (exec resets them, ignored signals stay ignored), SIGPIPE and SIGXFSZ ignored,
    SIGINT raises KeyboardInterrupt, nothing blocked."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            handler = signal.getsignal(sig)
            if handler not in (signal.SIG_DFL, signal.SIG_IGN, None):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            continue
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if signal.getsignal(signal.SIGINT) == signal.SIG_DFL:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exit_code(exc: SystemExit) -> int:
    """What ``sys.exit(code)`` makes a Python process exit with."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _child(fqn: str, params: bytes, env: dict[str, str], out: int, err: int,
           learn: int) -> int:
    """Become the module's process: fds 0-2 only, fresh std streams, the task's
    environment, no inherited exit handlers; then run the module as ``__main__``."""
    before = set(sys.modules)
    import fcntl

    # out of the way of 0-3 first: the worker may have had any of them closed
    out, err, learn = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (out, err, learn))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.dup2(learn, 3)
    learn = 3
    os.closerange(4, os.sysconf("SC_OPEN_MAX"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False))
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), errors="backslashreplace",
                                  line_buffering=True)
    _reset_signals()
    atexit._clear()
    os.environ.update(env)
    code = 1
    try:
        spec = importlib.util.find_spec(fqn)
        if spec is None or spec.loader is None or spec.origin is None:
            raise ImportError(f"No module named {fqn!r}", name=fqn)
        module_code = spec.loader.get_code(fqn)      # type: ignore[attr-defined]
        from ansible.module_utils import basic

        basic._ANSIBLE_ARGS = params
        main = types.ModuleType("__main__")
        main.__dict__.update(__file__=spec.origin, __spec__=spec, __loader__=spec.loader,
                             __package__=spec.parent, __builtins__=builtins,
                             _module_fqn=fqn, _modlib_path=None)
        sys.modules["__main__"] = main
        sys.argv = [spec.origin]
        exec(module_code, main.__dict__)    # noqa: S102 - the module file, as runpy does
        print('{"msg": "New-style module did not handle its own exit", "failed": true}')
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:   # noqa: BLE001 - an uncaught error, as the interpreter reports it
        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:   # noqa: BLE001, S110 - nothing left to report to
                    pass
            new = sorted(n for n in set(sys.modules) - before if n.startswith(SHARED_PREFIXES))
            try:
                os.write(learn, "\n".join(new).encode())
            except OSError:
                pass
    return code


def run_forked(fqn: str, module_args: dict[str, Any],
               env: dict[str, str]) -> dict[str, Any]:
    """Run module ``fqn`` with ``module_args`` in a fork of this process; the result in
    the shape ``_low_level_execute_command`` returns (rc, stdout, stderr and lines)."""
    params = json.dumps({"ANSIBLE_MODULE_ARGS": module_args}, cls=AnsibleJSONEncoder,
                        vault_to_text=True).encode()
    preload(["ansible.module_utils.basic", *sorted(_learned)])
    out, err, learn = _memfd("stdout"), _memfd("stderr"), _memfd("learn")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:    # pragma: no cover - the child's status is the parent's result
            code = 1
            try:
                code = _child(fqn, params, env, out, err, learn)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        if rc < 0:      # killed by a signal: what the shell around a module reports
            rc = 128 - rc
        stdout = to_text(_read_all(out), errors="surrogate_then_replace")
        stderr = to_text(_read_all(err), errors="surrogate_then_replace")
        _learned.update(n for n in _read_all(learn).decode(errors="replace").split("\n") if n)
    finally:
        for fd in (out, err, learn):
            os.close(fd)
    return dict(rc=rc, stdout=stdout, stdout_lines=stdout.splitlines(), stderr=stderr,
                stderr_lines=stderr.splitlines())


class InProcessAction(NormalAction):
    """The normal action, except that a module call on the controller itself runs in a
    fork of the worker (see the module docstring); results are the same either way."""

    PRELOAD: tuple[str, ...] = ()

    def _in_process_blocker(self, module_name: str, task_vars: dict[str, Any],
                            wrap_async: bool) -> str | None:
        """Why this call must take Ansible's normal path, or None."""
        if not boolean(self._templar.template(task_vars.get(SWITCH, True)), strict=False):
            return f"{SWITCH} is false"
        if not module_name.startswith(COLLECTION):
            return f"{module_name} is not a {COLLECTION[:-1]} module"
        if wrap_async or self._task.async_val:
            return "async"
        if getattr(self._connection, "transport", None) != "local":
            return "not a local connection"
        if self._play_context.become or getattr(self._connection, "become", None):
            return "become"
        if C.DEFAULT_KEEP_REMOTE_FILES:
            return "keep_remote_files"
        if not hasattr(os, "fork"):
            return "no fork()"
        try:
            shebang, interpreter = _get_shebang(
                "/usr/bin/python", task_vars, self._templar,
                remote_is_local=bool(getattr(self._connection, "_remote_is_local", False)))
        except InterpreterDiscoveryRequiredError:
            return "interpreter discovery"
        if not same_interpreter(interpreter):
            return f"interpreter {interpreter} is not the controller's {sys.executable}"
        self._used_interpreter = shebang
        return None

    def _execute_module(self, module_name=None, module_args=None, tmp=None, task_vars=None,
                        persist_files=False, delete_remote_tmp=None, wrap_async=False,
                        **newer):
        # ``newer``: keywords later ansible-core releases added (2.17's
        # ignore_unknown_opts), passed on only where this ansible-core has them
        task_vars = {} if task_vars is None else task_vars
        name = module_name or self._task.resolved_action or self._task.action
        blocker = self._in_process_blocker(name, task_vars, wrap_async)
        if blocker is not None:
            display.vvv(f"berth.engine: {name} runs the normal way ({blocker})",
                        host=self._play_context.remote_addr)
            return super()._execute_module(
                module_name=module_name, module_args=module_args, tmp=tmp,
                task_vars=task_vars, persist_files=persist_files,
                delete_remote_tmp=delete_remote_tmp, wrap_async=wrap_async, **newer)
        display.vvv(f"berth.engine: running {name} in a fork of the worker (local, "
                    "same interpreter)", host=self._play_context.remote_addr)
        if module_args is None:
            module_args = self._task.args
        self._update_module_args(name, module_args, task_vars, **newer)
        environment: dict[str, Any] = {}
        self._compute_environment_string(environment)
        preload(self.PRELOAD)
        fqn = "ansible_collections.berth.engine.plugins.modules." + name[len(COLLECTION):]
        res = run_forked(fqn, module_args,
                         {str(k): str(v) for k, v in environment.items()})
        data = self._parse_returned_data(res)
        # what ActionBase._execute_module does with a module's result, in the same order
        if data.pop("_ansible_suppress_tmpdir_delete", False):
            self._cleanup_remote_tmp = False
        if "results" in data and (not isinstance(data["results"], Sequence)
                                  or isinstance(data["results"], str)):
            data["ansible_module_results"] = data.pop("results")
            display.warning("Found internal 'results' key in module return, renamed to "
                            "'ansible_module_results'.")
        remove_internal_keys(data)
        if "stdout" in data and "stdout_lines" not in data:
            data["stdout_lines"] = (data.get("stdout", None) or "").splitlines()
        if "stderr" in data and "stderr_lines" not in data:
            data["stderr_lines"] = (data.get("stderr", None) or "").splitlines()
        return data
