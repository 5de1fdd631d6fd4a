"""``engine.containers``: docker-py's Container and ContainerCollection."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any, NamedTuple

from sdk.containers.service import public
from sdk.errors import ContainerError
from sdk.models.filters import CONTAINER_FILTERS, container_matches, normalize
from sdk.models.resource import Collection, Model


class ExecResult(NamedTuple):
    """docker-py's: ``code, output = container.exec_run(...)`` unpacks it."""

    exit_code: int | None
    output: bytes


class Container(Model):
    @property
    def name(self) -> str:
        return str(self.attrs["Name"]).lstrip("/")

    @property
    def status(self) -> str:
        return str(self.attrs["State"]["Status"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.attrs["Config"].get("Labels") or {})

    @property
    def health(self) -> str:
        return str((self.attrs["State"].get("Health") or {}).get("Status", "unknown"))

    @property
    def image(self) -> Any:
        return self.engine.images.get(self.attrs["Image"])

    @property
    def ports(self) -> dict[str, Any]:
        return dict(self.attrs.get("NetworkSettings", {}).get("Ports") or {})

    @property
    def _tasks(self) -> Any:
        return self.engine.tasks

    def start(self) -> None:
        self._tasks.start(self.id)
        self.reload()

    def stop(self, timeout: int | None = None) -> None:
        self._tasks.stop(self.id, timeout)
        self.reload()

    def kill(self, signal: str | int = "KILL") -> None:
        self._tasks.kill(self.id, signal)

    def restart(self, timeout: int | None = None) -> None:
        self._tasks.restart(self.id, timeout)
        self.reload()

    def pause(self) -> None:
        self._tasks.pause(self.id)

    def unpause(self) -> None:
        self._tasks.unpause(self.id)

    def remove(self, v: bool = False, force: bool = False, link: bool = False) -> None:
        self._tasks.remove(self.id, force=force, volumes=v)

    def wait(self, timeout: float | None = None,
             condition: str = "not-running") -> dict[str, Any]:
        return dict(self._tasks.wait(self.id, condition=condition, timeout=timeout))

    def rename(self, name: str) -> None:
        self.engine.container_store.rename(self.id, name)
        self.reload()

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """docker-py's ``Container.update``: blkio_weight, cpu_period, cpu_quota,
        cpu_shares, cpuset_cpus, cpuset_mems, mem_limit, mem_reservation, memswap_limit,
        nano_cpus, pids_limit, restart_policy; applied in place."""
        from sdk.tasks.update import host_changes

        warnings = self._tasks.update(self.id, host_changes(kwargs))
        self.reload()
        return {"Warnings": warnings}

    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False,
             timestamps: bool = False, tail: str | int = "all", since: Any = None,
             follow: bool | None = None, until: Any = None) -> bytes | Iterator[bytes]:
        from sdk.tasks.logview import log_lines

        gen = log_lines(self.engine, self.id, stdout=stdout, stderr=stderr,
                        timestamps=timestamps, tail=tail, since=since, until=until,
                        follow=bool(follow if follow is not None else stream))
        if stream:
            return (chunk for _stream, chunk in gen)
        return b"".join(chunk for _stream, chunk in gen)

    def exec_run(self, cmd: str | list[str], stdout: bool = True, stderr: bool = True,
                 stdin: bool = False, tty: bool = False, privileged: bool = False,
                 user: str = "", detach: bool = False, stream: bool = False,
                 socket: bool = False, environment: Any = None, workdir: str | None = None,
                 demux: bool = False) -> ExecResult:
        import shlex

        from sdk.containers.options import _env_list

        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        env = _env_list(environment)
        if detach:
            self._tasks.exec(self.id, args, user=user or None, env=env, workdir=workdir,
                             privileged=privileged, detach=True)
            return ExecResult(None, b"")
        code, out = self._tasks.exec_capture(self.id, args, user=user or None, env=env,
                                             workdir=workdir, privileged=privileged)
        return ExecResult(code, out)

    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        return dict(self._tasks.top(self.id, ps_args or "-ef"))

    def stats(self, decode: bool | None = None, stream: bool = True) -> Any:
        data = self._tasks.stats(self.id)
        if stream:
            return iter([data])
        return data

    def diff(self) -> list[dict[str, Any]]:
        from sdk.tasks.fsops import container_changes

        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Path": c.path, "Kind": kinds[c.kind]}
                for c in container_changes(self.engine, self.id)]

    def commit(self, repository: str | None = None, tag: str | None = None,
               message: str = "", author: str = "", pause: bool = True,
               changes: str | list[str] | None = None, conf: Any = None) -> Any:
        """docker-py's ``Container.commit``: returns the new Image."""
        from sdk.build.commit import commit

        target = f"{repository}:{tag}" if repository and tag else repository
        change_list = [changes] if isinstance(changes, str) else list(changes or [])
        image_id = commit(self.engine, self.id, repository=target, author=author,
                          message=message, changes=change_list, pause=pause)
        return self.engine.images.get(image_id)

    def get_archive(self, path: str, chunk_size: int | None = None,
                    encode_stream: bool = False) -> tuple[Iterator[bytes], dict[str, Any]]:
        """docker-py's: (tar chunks of ``path``, its stat dict); see sdk.containers.archive."""
        from sdk.containers.archive import get_archive

        chunks, st = get_archive(self.engine, self.id, path)
        return chunks, st.as_dict()

    def put_archive(self, path: str, data: Any) -> bool:
        """docker-py's: extract the tar ``data`` (bytes or a file) into directory ``path``."""
        from sdk.containers.archive import put_archive

        put_archive(self.engine, self.id, path, data)
        return True

    def export(self, chunk_size: int = 2 * 1024 * 1024) -> Iterator[bytes]:
        from sdk.tasks.fsops import export_container

        with tempfile.TemporaryFile() as tmp:
            export_container(self.engine, self.id, tmp)
            tmp.seek(0)
            while chunk := tmp.read(chunk_size):
                yield chunk


class ContainerCollection(Collection):
    model = Container

    def get(self, container_id: str) -> Container:
        return self.prepare_model(public(self.engine.tasks.get(container_id)))

    def create(self, image: str, command: str | list[str] | None = None,
               **kwargs: Any) -> Container:
        pull = kwargs.pop("pull", "missing")
        self._ensure_image(image, pull)
        doc = self.engine.container_store.create(image, command, **kwargs)
        return self.prepare_model(public(doc))

    def _ensure_image(self, image: str, pull: str) -> None:
        self.engine.image_store.ensure_local(image, pull)

    def run(self, image: str, command: str | list[str] | None = None,
            stdout: bool = True, stderr: bool = False, remove: bool = False,
            **kwargs: Any) -> Any:
        """create + start; without ``detach`` wait and return the output (docker-py)."""
        from sdk.tasks.supervisor import Terminal

        detach = bool(kwargs.pop("detach", False))
        kwargs.pop("stream", None)
        if detach:
            container = self.create(image, command, auto_remove=remove or
                                    kwargs.pop("auto_remove", False), detach=True, **kwargs)
            self.engine.tasks.start(container.id)
            container.reload()
            return container
        auto_remove = bool(remove or kwargs.pop("auto_remove", False))
        container = self.create(image, command, auto_remove=auto_remove, **kwargs)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            term = Terminal(stdout=out.fileno(), stderr=err.fileno(), stdin=None,
                            proxy_signals=False)
            code = self.engine.tasks.run_attached(container.id, term)
            out.seek(0)
            err.seek(0)
            out_data, err_data = out.read(), err.read()
        output = (out_data if stdout else b"") + (err_data if stderr else b"")
        if code != 0:
            raise ContainerError(container, code, command, image, err_data)
        return output

    def list(self, all: bool = False, before: str | None = None,   # noqa: A002 - docker-py
             filters: dict[str, Any] | None = None, limit: int = -1, since: str | None = None,
             sparse: bool = False, ignore_removed: bool = False) -> list[Container]:
        f = normalize(filters, CONTAINER_FILTERS)
        docs = self.engine.tasks.all()
        image_ids: dict[str, set[str]] = {}
        for ref in f.get("ancestor", []):
            try:
                image_ids[ref] = {self.engine.image_store.resolve(ref)}
            except Exception:   # noqa: BLE001 - unknown image matches nothing
                image_ids[ref] = set()
        out = []
        since_seen = since is None
        before_id = self.engine.container_store.resolve(before) if before else None
        since_id = self.engine.container_store.resolve(since) if since else None
        passed_before = before_id is None
        for doc in docs:
            if not passed_before:
                if doc["Id"] == before_id:
                    passed_before = True
                continue
            if since_id and doc["Id"] == since_id:
                since_seen = True
                break
            if not all and limit < 0 and not since and not before and \
                    doc["State"]["Status"] != "running" and "status" not in f:
                continue
            if container_matches(doc, f, image_ids):
                out.append(self.prepare_model(public(doc)))
        if since and not since_seen:
            out = []
        if limit > 0:
            out = out[:limit]
        return out

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        from sdk.models.filters import labels_match

        f = normalize(filters, frozenset({"label", "until"}))
        deleted, space = [], 0
        for doc in self.engine.tasks.all():
            if doc["State"]["Status"] in ("running", "paused", "restarting"):
                continue
            if "label" in f and not labels_match(doc["Config"].get("Labels"), f["label"]):
                continue
            space += self.engine.layer_store.container_size(doc["Id"])
            self.engine.tasks.remove(doc["Id"])
            deleted.append(doc["Id"])
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": space}

