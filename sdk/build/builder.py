"""The classic builder: runs a Dockerfile step by step, one image per step.

Each step starts from the previous step's image, changes its config and/or adds a
layer, and is committed as an (untagged) image, as Docker's classic builder does;
the image IDs printed as `` ---> ID`` are real and are what the step cache refers to.
RUN steps run in an ordinary berth container (removed afterwards, also on failure);
COPY/ADD/WORKDIR write their layer tar directly, without a container.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sdk.build.cache import StepCache, step_key
from sdk.build.context import BuildContext
from sdk.build.copy import (
    CopySpec,
    SourceRoot,
    collect_sources,
    fetch_urls,
    parse_chmod,
    source_hash,
    verify_checksum,
    write_copy_layer,
)
from sdk.build.instructions import MetadataSteps
from sdk.build.parser import DockerfileError, Instruction, name_values, parse
from sdk.build.rootview import RootView
from sdk.build.shellwords import env_map, process_word
from sdk.build.state import (
    _NOT_ONBUILD,
    DEFAULT_PATH,
    DEFAULT_SHELL,
    MAX_LAYERS,
    PROXY_ARGS,
    BuildError,
    BuildOptions,
    Stage,
    normalize_config,
)
from sdk.errors import InvalidArgument, SdkError

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.images.service import LayerRecord


class Builder(MetadataSteps):
    def __init__(self, engine: Engine, ctx: BuildContext, opts: BuildOptions,
                 emit: Callable[[str], None], run_fd: int | None = None) -> None:
        self.engine = engine
        self.store = engine.image_store
        self.ctx = ctx
        self.opts = opts
        self.emit = emit
        self.run_fd = run_fd
        self.cache = StepCache(engine.root)
        self.stages: dict[str, Stage] = {}
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0

    # ---- driver -----------------------------------------------------------------------
    def build(self) -> str:
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
                self.emit(f" ---> {_short(stage.image_id)}\n")
                for inst in group[1:]:
                    self._print_step(inst)
                    self._dispatch(stage, inst)
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

    # ---- helpers ------------------------------------------------------------------------
    def _env(self, stage: Stage) -> dict[str, str]:
        env = {k: v for k, v in stage.args.items() if v is not None}
        env.update(env_map(stage.config.get("Env") or []))
        return env

    def _shell(self, stage: Stage) -> list[str]:
        return list(stage.config.get("Shell") or DEFAULT_SHELL)

    def _nop(self, stage: Stage, comment: str) -> str:
        """created_by of a metadata step: ``/bin/sh -c #(nop)  CMD ["sh"]``."""
        return " ".join([*self._shell(stage), "#(nop) ", comment])

    def _nop1(self, stage: Stage, comment: str) -> str:
        """created_by of COPY/ADD/WORKDIR: ``/bin/sh -c #(nop) WORKDIR /app``."""
        return " ".join([*self._shell(stage), "#(nop) " + comment])

    def _view(self, stage: Stage) -> RootView:
        if not stage.layers:
            return RootView([])
        return RootView(self.engine.layer_store.lower_dirs(stage.layers[-1].chain_id))

    def _cached(self, stage: Stage, key: str) -> bool:
        if self.opts.nocache:
            return False
        image_id = self.cache.get(key)
        if not image_id or not self.store.exists(image_id):
            return False
        full = self.store.config(image_id)
        stage.image_id = image_id
        stage.config = dict(full.get("config") or {})
        stage.layers = self.store.layer_chain(image_id)
        stage.history = list(full.get("history") or [])
        self.emit(" ---> Using cache\n")
        return True

    def _key(self, stage: Stage, created_by: str, extra: str = "") -> str:
        cfg = normalize_config({**stage.config, "Image": ""})  # the parent is keyed already
        args = json.dumps(sorted(stage.args.items()))     # the build args in effect
        return step_key(stage.image_id, cfg,
                        f"{created_by}\0{stage.maintainer}\0{args}\0{extra}")

    def _commit(self, stage: Stage, created_by: str, layer: LayerRecord | None, *,
                key: str = "", record_history: bool = True) -> str:
        from sdk._internal.arch import goarch
        from sdk.images.service import now_rfc3339

        created = now_rfc3339()
        if layer is not None:
            if len(stage.layers) >= MAX_LAYERS:
                raise InvalidArgument(f"max depth exceeded: an image can have at most "
                                      f"{MAX_LAYERS} layers")
            stage.layers = [*stage.layers, layer]
        if record_history:
            entry: dict[str, Any] = {"created": created}
            if stage.maintainer:
                entry["author"] = stage.maintainer
            entry["created_by"] = created_by
            if layer is None:
                entry["empty_layer"] = True
            stage.history = [*stage.history, entry]
        cfg = dict(stage.config)
        cfg["Image"] = stage.image_id
        full: dict[str, Any] = {"architecture": stage.base.get("architecture") or goarch()}
        if stage.maintainer:
            full["author"] = stage.maintainer
        full["config"] = normalize_config(cfg)
        full["created"] = created
        full["history"] = stage.history
        full["os"] = stage.base.get("os") or "linux"
        full["rootfs"] = {"type": "layers", "diff_ids": [lr.diff_id for lr in stage.layers]}
        if stage.base.get("variant"):
            full["variant"] = stage.base["variant"]
        image_id = self.store.create_image(full, stage.layers, parent=stage.image_id)
        stage.image_id = image_id
        if key:
            self.cache.put(key, image_id)
        return image_id

    def _metadata(self, stage: Stage, comment: str, change: Callable[[], None]) -> None:
        change()
        created_by = self._nop(stage, comment)
        key = self._key(stage, created_by)
        if not self._cached(stage, key):
            self._commit(stage, created_by, None, key=key)

    def _add_layer_from(self, stage: Stage, write: Callable[[Any], int]) -> LayerRecord | None:
        """Write a layer tar with ``write`` and store it; None when it is empty."""
        if len(stage.layers) >= MAX_LAYERS:
            raise InvalidArgument(f"max depth exceeded: an image can have at most "
                                  f"{MAX_LAYERS} layers")
        with tempfile.TemporaryFile(dir=self._tmpdir()) as f:
            count = write(f)
            if not count:
                return None
            f.seek(0)
            parent = stage.layers[-1] if stage.layers else None
            return self.store.add_layer(f, parent)

    def _tmpdir(self) -> str:
        d = self.engine.root / "build-cache" / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return str(d)

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

    def _words(self, stage: Stage, inst: Instruction) -> list[str]:
        if inst.json_args is not None:
            return [process_word(w, self._env(stage), inst.escape) for w in inst.json_args]
        return [process_word(w, self._env(stage), inst.escape) for w in inst.rest.split()]

    def _i_workdir(self, stage: Stage, inst: Instruction) -> None:
        path = process_word(inst.rest, self._env(stage), inst.escape)
        if not path:
            raise DockerfileError(inst.line, "WORKDIR requires exactly one argument")
        if not path.startswith("/"):
            path = posixpath.join(stage.config.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        if path.startswith("//"):
            path = path[1:]
        stage.config["WorkingDir"] = path
        created_by = self._nop1(stage, f"WORKDIR {path}")
        key = self._key(stage, created_by)
        if self._cached(stage, key):
            return
        view = self._view(stage)
        rel = view.resolve(path.lstrip("/"))

        def write(f: Any) -> int:
            import tarfile
            import time

            missing = []
            p = rel
            while p and view.lstat(p) is None:
                missing.append(p)
                p = posixpath.dirname(p)
            if not missing:
                return 0
            existing = view.lstat(p) if p else None
            if p and existing is not None and not os.path.isdir(view.find(p) or ""):
                raise InvalidArgument(f"cannot create WORKDIR {path}: /{p} is not a "
                                      "directory")
            with tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                if p and existing is not None:
                    info = tarfile.TarInfo(p)
                    info.type, info.mode = tarfile.DIRTYPE, existing.st_mode & 0o7777
                    info.uid, info.gid = existing.st_uid, existing.st_gid
                    info.mtime = int(existing.st_mtime)
                    tar.addfile(info)
                for d in reversed(missing):
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(info)
            return len(missing)

        layer = self._add_layer_from(stage, write)
        self._commit(stage, created_by, layer, key=key)

    def _i_copy(self, stage: Stage, inst: Instruction) -> None:
        self._copy(stage, inst, is_add=False)

    def _i_add(self, stage: Stage, inst: Instruction) -> None:
        self._copy(stage, inst, is_add=True)

    def _copy(self, stage: Stage, inst: Instruction, *, is_add: bool) -> None:
        env = self._env(stage)
        if inst.json_args is not None:
            args = [process_word(w, env, inst.escape) for w in inst.json_args]
        else:
            args = [process_word(w, env, inst.escape) for w in inst.rest.split()]
        if len(args) < 2:
            raise DockerfileError(inst.line, f"{inst.cmd} requires at least two arguments, "
                                  "but only one was provided. Destination could not be "
                                  "determined.")
        srcs, dest = args[:-1], args[-1]
        view = self._view(stage)
        base = SourceRoot(str(self.ctx.root), self.ctx.ignored)
        from_ref = inst.flags.get("from", "")
        if from_ref:
            if is_add:
                raise DockerfileError(inst.line, "ADD does not support --from")
            base = self._from_source(from_ref, inst)
        chown = None
        if inst.flags.get("chown"):
            chown = view.lookup_user(process_word(inst.flags["chown"], env, inst.escape))
        chmod = parse_chmod(inst.flags["chmod"]) if inst.flags.get("chmod") else None
        with tempfile.TemporaryDirectory(dir=self._tmpdir()) as tmp:
            sources = collect_sources(base, srcs, allow_url=is_add, extract=is_add
                                      and not from_ref)
            fetch_urls(sources, tmp)
            if inst.flags.get("checksum"):
                verify_checksum(sources, inst.flags["checksum"])
            digest = source_hash(self.cache, base, sources)
            flags = ""
            if inst.flags.get("chown"):
                flags += f"--chown={inst.flags['chown']} "
            if inst.flags.get("chmod"):
                flags += f"--chmod={inst.flags['chmod']} "
            created_by = self._nop1(stage, f"{inst.cmd} {flags}{digest} in {dest} ")
            key = self._key(stage, created_by)
            if self._cached(stage, key):
                return
            spec = CopySpec(dest, stage.config.get("WorkingDir") or "/", chown, chmod)
            layer = self._add_layer_from(
                stage, lambda f: write_copy_layer(sources, base, spec, view, f))
        self._commit(stage, created_by, layer, key=key)

    def _from_source(self, ref: str, inst: Instruction) -> SourceRoot:
        stage = self.stages.get(ref.lower())
        if stage is not None:
            image_id = stage.image_id
        else:
            try:
                image_id = self.store.ensure_local(ref, "missing")
            except SdkError as exc:
                raise DockerfileError(inst.line, f"COPY --from={ref}: {exc}") from None
        layers = self.store.layer_chain(image_id) if image_id else []
        view = RootView(self.engine.layer_store.lower_dirs(layers[-1].chain_id)
                        if layers else [])
        return SourceRoot(view.dirs[0] if view.dirs else "/nonexistent", view=view)

    def _i_run(self, stage: Stage, inst: Instruction) -> None:
        cmd = self._exec_or_shell(stage, inst)
        env_keys = set(env_map(stage.config.get("Env") or []))
        arg_env = sorted(f"{k}={v}" for k, v in stage.args.items()
                         if v is not None and k not in env_keys)
        created_by = " ".join([f"|{len(arg_env)}", *arg_env, *cmd] if arg_env else cmd)
        key = self._key(stage, created_by)
        if self._cached(stage, key):
            return
        if not stage.image_id:
            self._commit(stage, "", None, record_history=False)
        layer = self._run_container(stage, cmd, arg_env)
        self._commit(stage, created_by, layer, key=key)

    def _run_container(self, stage: Stage, cmd: list[str],
                       env: list[str]) -> LayerRecord | None:
        from sdk.build.layer import write_tree_layer, write_upper_layer
        from sdk.tasks.supervisor import Terminal

        kwargs: dict[str, Any] = {"entrypoint": [""], "environment": env,
                                  "log_config": {"Type": "none"},
                                  "healthcheck": {"Test": ["NONE"]}}
        if self.opts.network_mode:
            kwargs["network_mode"] = self.opts.network_mode
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
            view = self._view(stage)
            upper = self.engine.layer_store.container_upper(cid)

            def write(f: Any) -> int:
                if self.engine.storage_driver == "overlay":
                    return write_upper_layer(upper, view, f)
                return write_tree_layer(upper, self.engine.layer_store.lower_dirs(
                    stage.layers[-1].chain_id)[0] if stage.layers else None, f)

            layer = self._add_layer_from(stage, write)
            keep = not self.opts.rm and not self.opts.force_rm
            return layer
        finally:
            if not keep:
                try:
                    self.engine.tasks.remove(cid, force=True, volumes=True)
                except SdkError:
                    pass
                self.emit(f"Removing intermediate container {cid[:12]}\n")


def _short(image_id: str) -> str:
    return image_id[7:19] if image_id.startswith("sha256:") else image_id[:12]


__all__ = ["BuildError", "BuildOptions", "Builder", "normalize_config"]
