"""What every build step shares: the build's state, the step cache and the commit.

``StepBase`` is the base of the instruction mixins (metadata, RUN, COPY/ADD/WORKDIR)
that ``Builder`` combines; it knows how a step is keyed in the cache, how a cache hit
is taken, how a step's image is committed and how a layer tar is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sdk.build.cache import StepCache, step_key
from sdk.build.context import BuildContext
from sdk.build.parser import Instruction
from sdk.build.rootview import RootView
from sdk.build.shellwords import env_map, process_word
from sdk.build.state import (
    DEFAULT_SHELL,
    MAX_LAYERS,
    BuildOptions,
    Stage,
    normalize_config,
)
from sdk.errors import InvalidArgument, SdkError

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.images.service import LayerRecord


_ZERO_TIME = "0001-01-01T00:00:00Z"


class StepBase:
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

    # ---- words and environment --------------------------------------------------------
    def _env(self, stage: Stage) -> dict[str, str]:
        env = {k: v for k, v in stage.args.items() if v is not None}
        env.update(env_map(stage.config.get("Env") or []))
        return env

    def _shell(self, stage: Stage) -> list[str]:
        return list(stage.config.get("Shell") or DEFAULT_SHELL)

    def _words(self, stage: Stage, inst: Instruction) -> list[str]:
        words = inst.json_args if inst.json_args is not None else inst.rest.split()
        return [process_word(w, self._env(stage), inst.escape) for w in words]

    def _exec_or_shell(self, stage: Stage, inst: Instruction) -> list[str]:
        if inst.json_args is not None:
            return list(inst.json_args)
        return [*self._shell(stage), inst.rest]

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

    # ---- cache ------------------------------------------------------------------------
    def _key(self, stage: Stage, created_by: str, extra: str = "") -> str:
        cfg = normalize_config({**stage.config, "Image": ""})  # the parent is keyed already
        args = json.dumps(sorted(stage.args.items()))     # the build args in effect
        return step_key(stage.image_id, cfg,
                        f"{created_by}\0{stage.maintainer}\0{args}\0{extra}")

    def _cached(self, stage: Stage, key: str) -> bool:
        if self.opts.nocache:
            return False
        image_id = self.cache.get(key)
        if not image_id:
            return False
        if not self.store.exists(image_id):     # removed by rmi or image prune
            self.cache.drop(key)
            return False
        full = self.store.config(image_id)
        stage.image_id = image_id
        stage.config = dict(full.get("config") or {})
        stage.layers = self.store.layer_chain(image_id)
        stage.history = list(full.get("history") or [])
        self.emit(" ---> Using cache\n")
        return True

    # ---- commit -----------------------------------------------------------------------
    def _commit(self, stage: Stage, created_by: str, layer: LayerRecord | None, *,
                key: str = "", record_history: bool = True) -> str:
        from sdk._internal.arch import goarch
        from sdk._internal.timefmt import now_rfc3339

        # a scratch stage's base (committed only so a container can be made from it, or
        # as the result of ``FROM scratch`` alone) gets Go's zero time, as docker shows
        # for images without a date: the same Dockerfile then gives the same ID again
        created = now_rfc3339() if record_history else _ZERO_TIME
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
        """A config-only step: change the config, then commit it (or take the cache)."""
        change()
        created_by = self._nop(stage, comment)
        key = self._key(stage, created_by)
        if self._cached(stage, key):
            return
        with self._step_container(stage, [*self._shell(stage), "#(nop) ", comment]):
            self._commit(stage, created_by, None, key=key)

    @contextmanager
    def _step_container(self, stage: Stage, cmd: list[str]) -> Iterator[str]:
        """The container Docker's classic builder creates (never starts) and commits for a
        step that runs no command: metadata steps and WORKDIR.  It makes the log read
        like docker's (`` ---> Running in ID`` / ``Removing intermediate container ID``)
        and is removed again, also when the commit fails."""
        if not stage.image_id:
            self._commit(stage, "", None, record_history=False)
        doc = self.engine.container_store.create(
            stage.image_id, cmd, entrypoint=[""], network_mode="none",
            log_config={"Type": "none"}, healthcheck={"Test": ["NONE"]})
        cid = doc["Id"]
        self.emit(f" ---> Running in {cid[:12]}\n")
        try:
            yield cid
        finally:
            try:
                self.engine.container_store.delete(cid)
            except SdkError:
                pass
            self.emit(f"Removing intermediate container {cid[:12]}\n")

    def _add_layer_from(self, stage: Stage, write: Callable[[Any], int]) -> LayerRecord | None:
        """Write a layer tar with ``write`` and store it; None when it is empty."""
        if len(stage.layers) >= MAX_LAYERS:
            raise InvalidArgument(f"max depth exceeded: an image can have at most "
                                  f"{MAX_LAYERS} layers")
        from sdk.build.layer_sink import store_layer

        return store_layer(self.store, write, stage.layers[-1] if stage.layers else None)

    def _tmpdir(self) -> str:
        d = self.engine.root / "build-cache" / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return str(d)
