"""testinfra backend ``berth://CONTAINER[?sudo...]``: commands exec into the container."""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any

from testinfra.backend import base


class BerthBackend(base.BaseBackend):
    """Runs each command with ``/bin/sh -c`` inside a running berth container.

    Through the SDK in-process when it is importable (an exec costs milliseconds),
    else through ``berth exec``.  The exec is privileged when the container is, as
    Docker's exec is.
    """

    NAME = "berth"

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name, self.user = self.parse_containerspec(name)
        self._engine: Any = None
        super().__init__(self.name, *args, **kwargs)

    def _sdk(self) -> Any:
        if self._engine is None:
            from sdk import Engine

            self._engine = Engine(root=os.environ.get("BERTH_ROOT") or None,
                                  config=os.environ.get("BERTH_CONFIG") or None)
        return self._engine

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        try:
            self._sdk()
        except ImportError:
            return self._run_cli(cmd)
        container = self._engine.containers.get(self.name)
        privileged = bool(container.attrs.get("HostConfig", {}).get("Privileged"))
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            code = self._engine.tasks.exec(container.id, ["/bin/sh", "-c", cmd],
                                           stdin=None, stdout=out.fileno(),
                                           stderr=err.fileno(), user=self.user,
                                           privileged=privileged)
            out.seek(0)
            err.seek(0)
            result = self.result(code, self.encode(cmd), out.read(), err.read())
        return result

    def _run_cli(self, cmd: str) -> base.CommandResult:
        argv = ["berth", "exec"]
        if self.user is not None:
            argv += ["-u", self.user]
        argv += [self.name, "/bin/sh", "-c", cmd]
        p = subprocess.run(argv, capture_output=True, check=False)
        return self.result(p.returncode, self.encode(cmd), p.stdout, p.stderr)
