"""``engine.containers`` over the Engine API: docker-py's Container and collection.

The models subclass the embedded ones, so properties (``name``, ``status``,
``labels``, ``ports``, ``health``...) and ``isinstance`` checks are shared; every
operation is overridden to go through the service, and the few the client does not
offer raise :class:`RemoteUnsupported` naming the method.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sdk.errors import ContainerError, ContainerNotFound, InvalidArgument, SdkError
from sdk.models.containers import Container, ExecResult
from sdk.models.resource import Collection
from sdk.remote.errors import RemoteUnsupported, runtime_error
from sdk.remote.transport import quote_ref

if TYPE_CHECKING:
    from sdk.remote.engine import RemoteEngine
    from sdk.remote.transport import Transport

STDOUT, STDERR = 1, 2


def _time_param(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if hasattr(value, "timestamp"):
        return repr(float(value.timestamp()))
    return str(value)


class RemoteContainer(Container):
    engine: RemoteEngine

    @property
    def _api(self) -> Transport:
        return self.engine.api

    @property
    def _path(self) -> str:
        return f"/containers/{quote_ref(self.id)}"

    @property
    def _tasks(self) -> Any:
        raise RemoteUnsupported("this Container method")

    def _post(self, action: str, **query: Any) -> None:
        self._api.call("POST", f"{self._path}/{action}", query=query,
                       resource="containers")

    def start(self) -> None:
        self._post("start")
        self.reload()

    def stop(self, timeout: int | None = None) -> None:
        self._post("stop", t=timeout)
        self.reload()

    def kill(self, signal: str | int = "KILL") -> None:
        self._post("kill", signal=signal)

    def restart(self, timeout: int | None = None) -> None:
        self._post("restart", t=timeout)
        self.reload()

    def pause(self) -> None:
        self._post("pause")

    def unpause(self) -> None:
        self._post("unpause")

    def remove(self, v: bool = False, force: bool = False, link: bool = False) -> None:
        if link:
            raise RemoteUnsupported("Container.remove(link=True)")
        self._api.call("DELETE", self._path, query={"v": v, "force": force},
                       resource="containers")

    def wait(self, timeout: float | None = None,
             condition: str = "not-running") -> dict[str, Any]:
        try:
            return dict(self._api.json("POST", f"{self._path}/wait",
                                       query={"condition": condition}, timeout=timeout))
        except TimeoutError:
            raise SdkError(f"timed out waiting for container {self.id[:12]}") from None

    def rename(self, name: str) -> None:
        self._post("rename", name=name)
        self.reload()

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """docker-py's ``Container.update`` (validated here as by the embedded one)."""
        from sdk.tasks.update import host_changes

        result = self._api.json("POST", f"{self._path}/update", body=host_changes(kwargs),
                                resource="containers")
        self.reload()
        return {"Warnings": (result or {}).get("Warnings") or []}

    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False,
             timestamps: bool = False, tail: str | int = "all", since: Any = None,
             follow: bool | None = None, until: Any = None) -> bytes | Iterator[bytes]:
        query = {"stdout": stdout, "stderr": stderr, "timestamps": timestamps,
                 "tail": tail, "since": _time_param(since), "until": _time_param(until),
                 "follow": bool(follow if follow is not None else stream)}
        resp = self._api.request("GET", f"{self._path}/logs", query=query,
                                 resource="containers")
        chunks = (data for _sid, data in resp.frames())
        if stream:
            return chunks
        return b"".join(chunks)

    def _output(self, **query: Any) -> tuple[bytes, bytes]:
        """(stdout, stderr) of the whole log so far."""
        resp = self._api.request("GET", f"{self._path}/logs",
                                 query={"stdout": True, "stderr": True, **query},
                                 resource="containers")
        out, err = [], []
        for sid, data in resp.frames():
            (err if sid == STDERR else out).append(data)
        return b"".join(out), b"".join(err)

    def exec_run(self, cmd: str | list[str], stdout: bool = True, stderr: bool = True,
                 stdin: bool = False, tty: bool = False, privileged: bool = False,
                 user: str = "", detach: bool = False, stream: bool = False,
                 socket: bool = False, environment: Any = None, workdir: str | None = None,
                 demux: bool = False) -> ExecResult:
        """As the embedded ``exec_run``: the output at once (``stream``/``demux`` are
        accepted and, as there, do not change the result)."""
        from sdk.containers.options import _env_list

        if socket:
            raise RemoteUnsupported("Container.exec_run(socket=True)")
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        config = {"Cmd": args, "AttachStdin": False, "AttachStdout": stdout,
                  "AttachStderr": stderr, "Tty": tty, "Privileged": privileged,
                  "User": user or "", "Env": _env_list(environment),
                  "WorkingDir": workdir or ""}
        exec_id = self._api.json("POST", f"{self._path}/exec", body=config,
                                 resource="containers")["Id"]
        resp = self._api.request("POST", f"/exec/{exec_id}/start",
                                 body={"Detach": detach, "Tty": tty}, resource="exec")
        if detach:
            resp.read()
            return ExecResult(None, b"")
        output = b"".join(data for _sid, data in resp.frames())
        info = self._api.json("GET", f"/exec/{exec_id}/json", resource="exec")
        code = info.get("ExitCode")
        if not info.get("Pid") and code:
            # the process never started: the daemon wrote the error to the stream, the
            # embedded exec_run raises it
            raise runtime_error(output.decode(errors="replace").strip(), int(code))
        return ExecResult(code, output)

    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        return dict(self._api.json("GET", f"{self._path}/top",
                                   query={"ps_args": ps_args}, resource="containers"))

    def stats(self, decode: bool | None = None, stream: bool = True) -> Any:
        data = self._api.json("GET", f"{self._path}/stats", query={"stream": False},
                              resource="containers")
        return iter([data]) if stream else data

    def diff(self) -> list[dict[str, Any]]:
        return list(self._api.json("GET", f"{self._path}/changes", resource="containers")
                    or [])

    def export(self, chunk_size: int = 2 * 1024 * 1024) -> Iterator[bytes]:
        resp = self._api.request("GET", f"{self._path}/export", resource="containers")
        return resp.chunks(chunk_size)

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("Container.commit")

    def get_archive(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("Container.get_archive")

    def put_archive(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("Container.put_archive")


class RemoteContainerCollection(Collection):
    model = RemoteContainer
    engine: RemoteEngine

    def get(self, container_id: str) -> RemoteContainer:
        attrs = self.engine.api.json("GET", f"/containers/{quote_ref(container_id)}/json",
                                     resource="containers")
        return self.prepare_model(attrs)  # type: ignore[no-any-return]

    def create(self, image: str, command: str | list[str] | None = None,
               **kwargs: Any) -> RemoteContainer:
        """docker-py's create: a missing image is pulled (``pull="missing"``)."""
        from sdk.errors import ImageNotFound
        from sdk.remote.create_body import create_body

        pull = kwargs.pop("pull", "missing")
        if pull not in ("always", "missing", "never"):
            raise InvalidArgument(f'invalid pull option: "{pull}": must be one of '
                                  '"always", "missing" or "never"')
        body, name = create_body(image, command, kwargs)
        if pull == "always":
            self.engine.images.pull(image)
        try:
            created = self.engine.api.json("POST", "/containers/create", body=body,
                                           query={"name": name}, resource="containers")
        except ImageNotFound:
            if pull != "missing":
                raise
            self.engine.images.pull(image)
            created = self.engine.api.json("POST", "/containers/create", body=body,
                                           query={"name": name}, resource="containers")
        return self.get(created["Id"])

    def run(self, image: str, command: str | list[str] | None = None,
            stdout: bool = True, stderr: bool = False, remove: bool = False,
            **kwargs: Any) -> Any:
        """create + start; without ``detach`` wait and return the output, raising
        ContainerError on a non-zero exit (docker-py)."""
        detach = bool(kwargs.pop("detach", False))
        kwargs.pop("stream", None)
        auto_remove = bool(remove or kwargs.pop("auto_remove", False))
        if detach:
            container = self.create(image, command, auto_remove=auto_remove, detach=True,
                                    **kwargs)
            container.start()
            return container
        policy = kwargs.get("restart_policy") or {}
        if auto_remove and isinstance(policy, dict) and policy.get("Name") not in \
                (None, "", "no"):
            raise InvalidArgument("conflicting options: cannot specify both --restart and "
                                  "--rm")
        # removed here once the output is read: the daemon's AutoRemove could take the
        # log with the container before this client reads it
        container = self.create(image, command, **kwargs)
        try:
            container.start()
            code = container.wait()["StatusCode"]
            out_data, err_data = container._output()
        finally:
            if auto_remove:
                try:
                    container.remove(force=True, v=True)
                except ContainerNotFound:
                    pass
        output = (out_data if stdout else b"") + (err_data if stderr else b"")
        if code != 0:
            raise ContainerError(container, code, command, image, err_data)
        return output

    def list(self, all: bool = False, before: str | None = None,   # noqa: A002 - docker-py
             filters: dict[str, Any] | None = None, limit: int = -1, since: str | None = None,
             sparse: bool = False, ignore_removed: bool = False) -> list[RemoteContainer]:
        if before or since:
            raise RemoteUnsupported("containers.list(before=/since=)")
        rows = self.engine.api.json("GET", "/containers/json",
                                    query={"all": all, "limit": limit if limit > 0 else None,
                                           "filters": filters or None},
                                    resource="containers")
        out = []
        for row in rows:
            try:
                out.append(self.get(row["Id"]))
            except ContainerNotFound:
                if not ignore_removed:
                    raise
        return out

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.engine.api.json("POST", "/containers/prune",
                                         query={"filters": filters or None},
                                         resource="containers"))
