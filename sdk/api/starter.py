"""A single-threaded helper process that starts containers for the API server.

The server answers requests on many threads; forking a container supervisor from a
threaded process could copy a lock another thread holds (SQLite's, the allocator's,
the import lock) into the child and deadlock it.  So the server forks this helper
once, before any thread exists, and asks it to start containers: it stays warm (the
SDK is already imported) and every fork happens in a process with one thread.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

from sdk.errors import SdkError


@dataclass
class Starter:
    sock: socket.socket
    pid: int
    lock: threading.Lock

    @classmethod
    def spawn(cls, root: str | None, config: str | None,
              cli_listener: socket.socket | None = None) -> Starter:
        """Fork the helper; with ``cli_listener`` it also runs forwarded CLI commands."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            parent.close()
            code = 0
            try:
                _serve(child, root, config, cli_listener)
            except BaseException:   # noqa: BLE001 - the helper must never return
                code = 1
            finally:
                os._exit(code)
        child.close()
        if cli_listener is not None:
            cli_listener.close()     # the helper owns it now
        starter = cls(parent, pid, threading.Lock())
        ready = starter._read_reply()
        if not ready.get("ok"):
            starter.close()
            raise SdkError(f"the engine could not repair its state: {ready.get('error')}")
        return starter

    def start(self, cid: str) -> None:
        reply = self._call({"op": "start", "id": cid})
        if not reply.get("ok"):
            from sdk.tasks.supervisor import _error_from

            raise _error_from(reply)

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
            return self._read_reply()

    def _read_reply(self) -> dict[str, Any]:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SdkError("the engine's start helper died; restart `berth daemon`")
            data += chunk
        return json.loads(data)

    def close(self) -> None:
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _serve(sock: socket.socket, root: str | None, config: str | None,
           cli_listener: socket.socket | None) -> None:
    import selectors

    from sdk.api import cli_runner
    from sdk.cli import main as _cli_main  # noqa: F401 - warm: forks start with it loaded
    from sdk.engine import Engine

    engine = Engine(root=root, config=config)
    try:
        engine.repair()
        restart_on_boot(engine)
        ready: dict[str, Any] = {"ok": True}
    except Exception as exc:   # noqa: BLE001 - reported to the daemon, which stops
        ready = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    engine.db.close()
    sock.sendall(json.dumps(ready).encode() + b"\n")
    if not ready["ok"]:
        return
    reader = sock.makefile("rb")
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "start")
    if cli_listener is not None:
        _preload()
        sel.register(cli_listener, selectors.EVENT_READ, "cli")
    import time

    warm_until = 0.0
    while True:
        warming = time.monotonic() < warm_until
        for key, _ in sel.select(timeout=cli_runner.WARM_EVERY if warming else 1.0):
            if key.data == "cli":
                if cli_runner.serve_one(cli_listener, [sock], root,  # type: ignore[arg-type]
                                        config):
                    warm_until = time.monotonic() + cli_runner.WARM_SECONDS
                continue
            line = reader.readline()
            if not line:
                return
            sock.sendall(json.dumps(_start(engine, json.loads(line))).encode() + b"\n")
        if time.monotonic() < warm_until:
            cli_runner.warm_cgroups()
        cli_runner.reap()


def restart_on_boot(engine: Any) -> list[str]:
    """Start what dockerd starts when it comes up: restart policy ``always``, and
    ``unless-stopped`` unless a user stopped it.  Returns the started IDs."""
    started = []
    for doc in engine.tasks.all():
        never_started = doc["State"].get("StartedAt", "0001").startswith("0001")
        if doc["State"]["Status"] not in ("exited", "created") or never_started:
            continue
        policy = (doc["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
        by_user = bool(doc["_berth"].get("stopped_by_user"))
        if policy == "always" or (policy == "unless-stopped" and not by_user):
            try:
                engine.tasks.start(doc["Id"])
                started.append(doc["Id"])
            except SdkError as exc:
                print(f"berth daemon: cannot restart {doc['Name'][1:]}: {exc}",
                      file=sys.stderr)
    return started


def _start(engine: Any, request: dict[str, Any]) -> dict[str, Any]:
    try:
        if request.get("op") != "start":
            raise SdkError(f"unknown request {request.get('op')!r}")
        engine.tasks.start(request["id"])
        reply: dict[str, Any] = {"ok": True}
    except SdkError as exc:
        reply = {"ok": False, "kind": type(exc).__name__, "error": str(exc)}
    except Exception as exc:   # noqa: BLE001 - report, keep serving
        reply = {"ok": False, "kind": "SdkError", "error": f"{type(exc).__name__}: {exc}"}
    engine.db.close()     # no SQLite state may cross the next fork
    return reply


def _preload() -> None:
    """Import what commands use, once, so forwarded commands start warm."""
    import importlib

    for name in ("sdk.cli.containers", "sdk.cli.ps", "sdk.cli.images", "sdk.cli.inspect",
                 "sdk.cli.volumes", "sdk.cli.system", "sdk.cli.common", "sdk.cli.flags",
                 "sdk.cli.runflags", "sdk.cli.template", "sdk.cli.table",
                 "sdk.containers.service", "sdk.containers.options",
                 "sdk.containers.specgen", "sdk.tasks.service", "sdk.tasks.supervisor",
                 "sdk.tasks.logview", "sdk.runtime.spawn", "sdk.runtime.execin",
                 "sdk.runtime.cgroups", "sdk.runtime.seccomp", "sdk.models.containers",
                 "sdk.models.images", "sdk.models.volumes", "sdk._internal.timefmt",
                 "sdk.network.service", "sdk.network.netlink", "sdk.network.hostsfile",
                 "sdk.network.rules", "sdk.network.ports", "sdk.network.ipam",
                 "sdk.models.networks", "sdk.cli.networks", "sdk.cli.events",
                 "sdk.cli.remote", "sdk.cli.update", "sdk.config", "sdk.containers.labels",
                 "sdk.tasks.copyup", "sdk.tasks.logs", "sdk.tasks.restart",
                 "sdk.tasks.update", "sdk._internal.filters", "subprocess", "gzip",
                 "_strptime", "platform", "uuid", "sdk.images.service",
                 "sdk.snapshots.layers", "sdk.snapshots.probe", "sdk.content.store",
                 "sdk.volumes.service", "sdk.runtime.spec", "sdk.cli.cp", "sdk.containers.archive",
                 "sdk.diff.apply", "sdk.diff.tarwriter", "tarfile", "tempfile"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    _warm_caches()
    # everything loaded so far lives as long as the helper: keep it out of the cyclic
    # GC, whose scans would write to every object and so copy every page into each
    # forked command (copy-on-write)
    import gc

    gc.collect()
    gc.freeze()


def _warm_caches() -> None:
    """Compute, once, what every container start caches per process (Docker's seccomp
    profile compiled to BPF, granted capabilities, masked-path globs, the host's cgroup
    layout): a forked command inherits the results instead of paying ~20 ms each time."""
    from sdk.runtime import defaults, spawn
    from sdk.runtime.cgroups_fs import discover
    from sdk.runtime.rootfs_cgroup import host_layout
    from sdk.runtime.spec import Process

    for process in (Process(args=("true",), capabilities=defaults.DEFAULT_CAPABILITIES),
                    Process(args=("true",), capabilities=defaults.DEFAULT_CAPABILITIES,
                            seccomp=False)):
        try:
            spawn.seccomp_filter(process, False)
            spawn.granted_caps(process, False)
        except SdkError:
            pass          # reported, with context, by the start that needs it
    spawn.expand_globs(tuple(defaults.MASKED_PATHS))
    spawn.expand_globs(tuple(defaults.READONLY_PATHS))
    for warm in (discover, host_layout):
        try:
            warm()
        except OSError:
            pass
