"""COPY, ADD and WORKDIR: steps whose layer berth writes itself, without running a
command (the mechanics of sources, archives and Docker's directory rules are in
``sdk.build.copy``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from typing import Any

from sdk.build.copy import (
    CopySpec,
    Source,
    SourceRoot,
    collect_sources,
    fetch_urls,
    parse_chmod,
    source_hash,
    verify_checksum,
    write_copy_layer,
)
from sdk.build.parser import DockerfileError, Heredoc, Instruction, heredoc_word
from sdk.build.rootview import RootView
from sdk.build.shellwords import expand_heredoc, process_word
from sdk.build.state import Stage
from sdk.build.steps import StepBase
from sdk.errors import InvalidArgument, SdkError


class FileSteps(StepBase):
    """Mixed into ``Builder``: WORKDIR, COPY and ADD."""

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

        with self._step_container(stage, [*self._shell(stage), f"#(nop) WORKDIR {path}"]):
            layer = self._add_layer_from(stage, write)
            self._commit(stage, created_by, layer, key=key)

    def _i_copy(self, stage: Stage, inst: Instruction) -> None:
        self._copy(stage, inst, is_add=False)

    def _i_add(self, stage: Stage, inst: Instruction) -> None:
        self._copy(stage, inst, is_add=True)

    def _copy(self, stage: Stage, inst: Instruction, *, is_add: bool) -> None:
        args = self._words(stage, inst)
        if len(args) < 2:
            raise DockerfileError(inst.line, f"{inst.cmd} requires at least two arguments, "
                                  "but only one was provided. Destination could not be "
                                  "determined.")
        srcs, dest = args[:-1], args[-1]
        env = self._env(stage)
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
        sources: list[Source] = []
        heredocs = iter(inst.heredocs)
        for src in srcs:
            doc = next(heredocs, None) if heredoc_word(src) else None
            if doc is not None:
                sources.append(self._heredoc_source(stage, inst, doc))
                continue
            sources += collect_sources(base, [src], allow_url=is_add,
                                       extract=is_add and not from_ref)
        with self._downloads(sources) as tmp:
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

    def _downloads(self, sources: list[Source]) -> contextlib.AbstractContextManager[str]:
        """A temp dir for URL sources (none, and no tempfile import, without them)."""
        if not any(s.url for s in sources):
            return contextlib.nullcontext("")
        import tempfile

        return tempfile.TemporaryDirectory(dir=self._tmpdir())

    def _heredoc_source(self, stage: Stage, inst: Instruction, doc: Heredoc) -> Source:
        """``COPY <<NAME dest``: the body as a file NAME (mode 0664, as buildkit), kept
        under ``build-cache/heredoc/<hash>/`` so a rebuild hashes the same path."""
        if "/" in doc.name or doc.name in (".", ".."):
            raise DockerfileError(inst.line, f"{inst.cmd}: the heredoc name {doc.name!r} "
                                  "must be a plain file name")
        content = expand_heredoc(doc.content, self._env(stage), inst.escape) \
            if doc.expand else doc.content
        digest = hashlib.sha256(f"{doc.name}\0{content}".encode()).hexdigest()
        folder = self.engine.root / "build-cache" / "heredoc" / digest
        path = folder / doc.name
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".tmp-{os.getpid()}"
            tmp.write_text(content)
            os.chmod(tmp, 0o664)
            os.replace(tmp, path)
        return Source(str(path), doc.name, doc.name)

    def _from_source(self, ref: str, inst: Instruction) -> SourceRoot:
        """``COPY --from=``: an earlier stage (by name or index) or an image."""
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
