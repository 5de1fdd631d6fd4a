"""RUN: the command runs in an ordinary berth container built from the previous step's
image (the build's env, user and workdir); its writable layer becomes the step's layer.
The container is removed afterwards, also when the command fails."""

from __future__ import annotations

import os
import posixpath
import sys
from typing import TYPE_CHECKING, Any

from sdk.build.parser import Heredoc, Instruction, heredoc_word
from sdk.build.shellwords import env_map
from sdk.build.state import BuildError, Stage
from sdk.build.steps import StepBase
from sdk.errors import SdkError

if TYPE_CHECKING:
    from sdk.images.service import LayerRecord


class RunSteps(StepBase):
    """Mixed into ``Builder``: RUN."""

    def _i_run(self, stage: Stage, inst: Instruction) -> None:
        cmd, script = self._run_command(stage, inst)
        env_keys = set(env_map(stage.config.get("Env") or []))
        arg_env = sorted(f"{k}={v}" for k, v in stage.args.items()
                         if v is not None and k not in env_keys)
        created_by = " ".join([f"|{len(arg_env)}", *arg_env, *cmd] if arg_env else cmd)
        key = self._key(stage, created_by, script.content if script else "")
        if self._cached(stage, key):
            return
        if not stage.image_id:
            self._commit(stage, "", None, record_history=False)
        if script is None:
            layer = self._run_container(stage, cmd, arg_env)
        else:
            import tempfile

            with tempfile.TemporaryDirectory(dir=self._tmpdir()) as tmp:
                path = os.path.join(tmp, "script")
                with open(path, "w") as f:
                    f.write(script.content)
                os.chmod(path, 0o755)
                layer = self._run_container(stage, cmd, arg_env,
                                            {path: {"bind": cmd[0], "mode": "ro"}})
        self._commit(stage, created_by, layer, key=key)

    def _run_command(self, stage: Stage,
                     inst: Instruction) -> tuple[list[str], Heredoc | None]:
        """The command of a RUN, and the heredoc to run as a script file, if any.

        Heredocs (Dockerfile 1.4), as buildkit runs them: ``RUN <<EOF`` alone runs the
        body with the shell, or, when it starts with ``#!``, as an executable file at
        ``/dev/pipes/NAME``; a heredoc inside a longer command line goes to the shell
        with its body, which then reads it as a here-document."""
        if not inst.heredocs:
            return self._exec_or_shell(stage, inst), None
        first = inst.heredocs[0]
        if heredoc_word(inst.rest.strip()) is not None:
            if first.content.startswith("#!"):
                return [posixpath.join("/dev/pipes", first.name)], first
            return [*self._shell(stage), first.content], None
        script = "\n".join([inst.rest, *(h.raw for h in inst.heredocs)])
        return [*self._shell(stage), script], None

    def _run_container(self, stage: Stage, cmd: list[str], env: list[str],
                       binds: dict[str, dict[str, str]] | None = None
                       ) -> LayerRecord | None:
        import tempfile

        from sdk.tasks.supervisor import Terminal

        kwargs: dict[str, Any] = {"entrypoint": [""], "environment": env,
                                  "log_config": {"Type": "none"},
                                  "healthcheck": {"Test": ["NONE"]}}
        if self.opts.network_mode:
            kwargs["network_mode"] = self.opts.network_mode
        if binds:
            kwargs["volumes"] = binds
        doc = self.engine.container_store.create(stage.image_id, cmd, **kwargs)
        cid = doc["Id"]
        keep = False
        try:
            self.emit(f" ---> Running in {cid[:12]}\n")
            if self.run_fd is not None:
                sys.stdout.flush()
            with tempfile.TemporaryFile() as capture:
                fd = capture.fileno() if self.run_fd is None else self.run_fd
                term = Terminal(stdout=fd, stderr=fd, stdin=None, proxy_signals=False)
                code = self.engine.tasks.run_attached(cid, term)
                if self.run_fd is None:
                    capture.seek(0)
                    text = capture.read().decode("utf-8", "replace")
                    if text:
                        self.emit(text)
            if code != 0:
                raise BuildError(f"The command '{' '.join(cmd)}' returned a non-zero code: "
                                 f"{code}")
            layer = self._add_layer_from(stage, lambda f: self._write_diff(stage, cid, f))
            keep = not self.opts.rm and not self.opts.force_rm
            return layer
        finally:
            if not keep:
                try:
                    self.engine.tasks.remove(cid, force=True, volumes=True)
                except SdkError:
                    pass
                self.emit(f"Removing intermediate container {cid[:12]}\n")

    def _write_diff(self, stage: Stage, cid: str, out: Any) -> int:
        """The container's changes as a layer tar: its overlay upper dir, or (vfs) the
        difference of its tree against the image's."""
        from sdk.build.layer import write_tree_layer, write_upper_layer

        upper = self.engine.layer_store.container_upper(cid)
        if self.engine.storage_driver == "overlay":
            return write_upper_layer(upper, self._view(stage), out)
        lower = self.engine.layer_store.lower_dirs(stage.layers[-1].chain_id)[0] \
            if stage.layers else None
        return write_tree_layer(upper, lower, out)
