"""The classic builder: runs a Dockerfile step by step, one image per step.

Each step starts from the previous step's image, changes its config and/or adds a
layer, and is committed as an (untagged) image, as Docker's classic builder does;
the image IDs printed as `` ---> ID`` are real and are what the step cache refers to.
RUN steps run in an ordinary berth container (removed afterwards, also on failure);
COPY/ADD/WORKDIR write their layer tar directly.  Metadata steps and WORKDIR create
(never start) a container to commit, as Docker does, so the log reads alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from sdk._internal import trace
from sdk.build.context import BuildContext
from sdk.build.file_steps import FileSteps
from sdk.build.instructions import MetadataSteps
from sdk.build.parser import DockerfileError, Instruction, name_values, parse
from sdk.build.run_step import RunSteps
from sdk.build.shellwords import env_map, process_word
from sdk.build.state import (
    _NOT_ONBUILD,
    DEFAULT_PATH,
    PROXY_ARGS,
    BuildError,
    BuildOptions,
    Stage,
    normalize_config,
)
from sdk.errors import InvalidArgument, SdkError

if TYPE_CHECKING:
    from sdk.engine import Engine


class Builder(MetadataSteps, RunSteps, FileSteps):
    """Stages, FROM and instruction dispatch; the steps themselves are in the mixins
    (``instructions``: metadata, ``run_step``: RUN, ``file_steps``: COPY/ADD/WORKDIR)
    over ``steps.StepBase`` (cache and commit)."""

    def __init__(self, engine: Engine, ctx: BuildContext, opts: BuildOptions,
                 emit: Callable[[str], None], run_fd: int | None = None) -> None:
        super().__init__(engine, ctx, opts, emit, run_fd)
        self.step = 0
        self.total = 0

    # ---- driver -----------------------------------------------------------------------
    def build(self) -> str:
        trace.mark("build: imports, engine, context")
        df = parse(self.ctx.dockerfile)
        meta: list[Instruction] = []
        groups: list[list[Instruction]] = []
        for inst in df.instructions:
            if inst.cmd == "FROM":
                groups.append([inst])
            elif not groups:
                if inst.cmd != "ARG":
                    raise DockerfileError(inst.line, f"{inst.cmd} is not allowed before the "
                                          "first FROM (only ARG is): no build stage in "
                                          "current context")
                meta.append(inst)
            else:
                groups[-1].append(inst)
        if not groups:
            raise InvalidArgument("the Dockerfile has no FROM instruction: no build stage "
                                  "in current context")
        names = [self._stage_name(g[0]) for g in groups]
        if self.opts.target:
            target = self.opts.target.lower()
            if target not in names:
                raise InvalidArgument(f"failed to reach build target {self.opts.target} in "
                                      "Dockerfile")
            groups = groups[:names.index(target) + 1]
        if self.opts.labels:
            line = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}"
                                       for k, v in sorted(self.opts.labels.items()))
            last = groups[-1][-1]
            groups[-1].append(Instruction("LABEL", line[6:], line, last.line,
                                          escape=df.escape))
        self.total = len(meta) + sum(len(g) for g in groups)
        for inst in meta:
            self._print_step(inst)
            for key, value in name_values(inst, allow_bare=True):
                default = None if value is None else process_word(
                    value, self._meta_env(), inst.escape)
                self.meta_args[key] = self.opts.buildargs.get(key, default) \
                    if key in self.opts.buildargs else default
                if key in self.opts.buildargs:
                    self.used_args.add(key)
        stage: Stage | None = None
        try:
            for index, group in enumerate(groups):
                stage = self._from(group[0], index)
                trace.mark(f"step {self.step}: FROM")
                self.emit(f" ---> {_short(stage.image_id)}\n")
                for inst in group[1:]:
                    self._print_step(inst)
                    self._dispatch(stage, inst)
                    trace.mark(f"step {self.step}: {inst.cmd}")
                    self.emit(f" ---> {_short(stage.image_id)}\n")
                self.stages[stage.name] = stage
                self.stages[str(index)] = stage
        finally:
            self.cache.flush()
        assert stage is not None
        unused = sorted(set(self.opts.buildargs) - self.used_args - PROXY_ARGS)
        if unused:
            self.emit(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                      "consumed\n")
        if not stage.image_id:
            stage.image_id = self._commit(stage, "", None, record_history=False)
        return stage.image_id

    def _print_step(self, inst: Instruction) -> None:
        self.step += 1
        self.emit(f"Step {self.step}/{self.total} : {inst.original}\n")

    @staticmethod
    def _stage_name(inst: Instruction) -> str:
        words = inst.rest.split()
        if len(words) == 3 and words[1].upper() == "AS":
            return words[2].lower()
        return ""

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    # ---- FROM ---------------------------------------------------------------------------
    def _from(self, inst: Instruction, index: int) -> Stage:
        self._print_step(inst)
        words = inst.rest.split()
        if len(words) == 3 and words[1].upper() == "AS":
            name = words[2].lower()
        elif len(words) == 1:
            name = ""
        else:
            raise DockerfileError(inst.line, "FROM requires either one or three arguments")
        ref = process_word(words[0], self._meta_env(), inst.escape)
        if not ref:
            raise DockerfileError(inst.line, f"base name ({words[0]}) should not be blank")
        if name and name in self.stages:
            raise DockerfileError(inst.line, f"duplicate name {name}")
        stage = Stage(name or str(index), index)
        if ref.lower() in self.stages:
            prev = self.stages[ref.lower()]
            stage.image_id = prev.image_id
            self._load_image(stage, prev.image_id)
        elif ref == "scratch":
            stage.base = {}
            stage.config = {}
        else:
            try:
                image_id = self.store.ensure_local(ref, "always" if self.opts.pull
                                                   else "missing")
            except SdkError as exc:
                raise DockerfileError(inst.line, str(exc)) from None
            stage.image_id = image_id
            self._load_image(stage, image_id)
        env = env_map(stage.config.get("Env") or [])
        if "PATH" not in env:
            stage.config["Env"] = list(stage.config.get("Env") or []) + \
                [f"PATH={DEFAULT_PATH}"]
        stage.config["OpenStdin"] = False
        stage.config["StdinOnce"] = False
        triggers = list(stage.config.get("OnBuild") or [])
        stage.config["OnBuild"] = None
        if triggers:
            self.emit(f"# Executing {len(triggers)} build trigger"
                      f"{'s' if len(triggers) > 1 else ''}\n")
            from sdk.build.parser import parse as parse_df

            for text in triggers:
                for trig in parse_df(text).instructions:
                    trig.line = inst.line
                    if trig.cmd in _NOT_ONBUILD:
                        raise DockerfileError(inst.line, f"{trig.cmd} isn't allowed as an "
                                              "ONBUILD trigger")
                    self._dispatch(stage, trig)
        return stage

    def _load_image(self, stage: Stage, image_id: str) -> None:
        full = self.store.config(image_id)
        stage.base = {k: v for k, v in full.items() if k in ("architecture", "os",
                                                               "variant")}
        stage.config = dict(full.get("config") or {})
        stage.layers = self.store.layer_chain(image_id)
        stage.history = list(full.get("history") or [])
        stage.maintainer = ""

    # ---- instructions -----------------------------------------------------------------
    def _dispatch(self, stage: Stage, inst: Instruction) -> None:
        handler = getattr(self, "_i_" + inst.cmd.lower(), None)
        if handler is None or inst.cmd == "FROM":
            raise DockerfileError(inst.line, f"unknown instruction: {inst.cmd}")
        try:
            handler(stage, inst)
        except DockerfileError:
            raise
        except BuildError:
            raise
        except SdkError as exc:
            raise DockerfileError(inst.line, f"{inst.cmd} failed: {exc}"
                                  if inst.cmd in ("COPY", "ADD") else str(exc)) from None
        except OSError as exc:     # an unreadable context file, a full disk, ...
            raise DockerfileError(inst.line, f"{inst.cmd} failed: {exc}") from None


def _short(image_id: str) -> str:
    return image_id[7:19] if image_id.startswith("sha256:") else image_id[:12]


__all__ = ["BuildError", "BuildOptions", "Builder", "normalize_config"]
