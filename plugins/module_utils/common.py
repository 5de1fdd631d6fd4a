# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What every berth.engine module shares: opening the engine, mapping SDK errors to one
clear ``fail_json`` line, recording actions for check mode, diff and ``actions``."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, env_fallback

try:
    from sdk import Engine
    from sdk.errors import SdkError

    HAS_SDK = True
    SDK_IMPORT_ERROR = None
except ImportError:     # the managed host lacks the SDK: say which role installs it
    Engine = None       # type: ignore[assignment,misc]
    SdkError = Exception    # type: ignore[assignment,misc]
    HAS_SDK = False
    SDK_IMPORT_ERROR = traceback.format_exc()

ROLE = "berth.engine.engine"

ENGINE_ARGUMENT_SPEC: dict[str, Any] = {
    "engine_root": {"type": "path", "fallback": (env_fallback, ["BERTH_ROOT"])},
    "engine_config": {"type": "path", "fallback": (env_fallback, ["BERTH_CONFIG"])},
}


def sdk_missing_message() -> str:
    return (f"the berth SDK (Python package 'sdk' of berth-engine) cannot be imported by "
            f"{sys.executable} on this host: install it with the {ROLE} role, or point "
            "ansible_python_interpreter at a Python that has it")


class EngineModule:
    """An AnsibleModule plus the berth engine it manages.

    ``engine_root``/``engine_config`` (or the BERTH_ROOT/BERTH_CONFIG environment
    variables) choose the data root and daemon.json; unset means the engine's defaults
    (/var/lib/berth, /etc/berth/daemon.json).
    """

    def __init__(self, argument_spec: dict[str, Any],
                 **kwargs: Any) -> None:
        spec = dict(ENGINE_ARGUMENT_SPEC)
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        if not HAS_SDK:
            self.module.fail_json(msg=sdk_missing_message(), exception=SDK_IMPORT_ERROR)
        self.params: dict[str, Any] = self.module.params
        self.check_mode: bool = self.module.check_mode
        self.actions: list[str] = []
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = Engine(root=self.params.get("engine_root"),
                                  config=self.params.get("engine_config"))
        return self._engine

    def act(self, description: str, fn: Callable[[], Any] | None = None) -> Any:
        """Run an action (unless in check mode) and record it once it is done, so that
        ``actions`` and ``changed`` of a failed task list only what really happened."""
        if self.check_mode or fn is None:
            self.actions.append(description)
            return None
        result = fn()
        self.actions.append(description)
        return result

    def fail(self, msg: str, **kwargs: Any) -> None:
        if self.actions:
            kwargs.setdefault("actions", self.actions)
            # what ran before the failure did change the host
            kwargs.setdefault("changed", not self.check_mode)
        self.module.fail_json(msg=msg, **kwargs)

    def run(self, body: Callable[[], dict[str, Any]]) -> None:
        """Run ``body`` and exit with its result; SDK errors become one-line failures."""
        try:
            result = body()
        except SdkError as exc:    # type: ignore[misc]
            self.fail(str(exc), error_type=type(exc).__name__)
            return
        except OSError as exc:      # a path given to the task: one line, no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            self.fail(f"{where}{exc.strerror or exc}", error_type=type(exc).__name__)
            return
        finally:
            if self._engine is not None:
                try:
                    self._engine.close()
                except Exception:   # noqa: BLE001 - closing never hides the result
                    pass
        result.setdefault("actions", self.actions)
        self.module.exit_json(**result)


def require_method(obj: Any, name: str, what: str) -> Callable[..., Any]:
    """``obj.name`` or a clear SdkError saying this berth version cannot do ``what`` yet."""
    method = getattr(obj, name, None)
    if method is None:
        raise SdkError(f"{what} is not available in this berth version (the SDK has no "  # type: ignore[call-arg]
                       f"{type(obj).__name__}.{name}); upgrade berth on the managed host")
    return method


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so readers see the old or the new content, never a mix."""
    import tempfile

    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    try:
        st = os.stat(path)
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        uid = gid = -1
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if uid != -1:
            os.chown(tmp, uid, gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
