"""The supervisor: keeps one container's init process.

It starts the process, copies its output into the json-file log (and to the caller's
terminal for foreground runs), records the exit status, applies the restart policy,
runs health checks and removes ``--rm`` containers.  Foreground ``run`` uses it in the
CLI process itself; detached containers get a double-forked supervisor that outlives
the CLI (``spawn_detached``).  The container dies with its supervisor (PDEATHSIG), so
a killed supervisor can never leave an unsupervised container behind: the next
command sees the dead supervisor and repairs the record (``TaskService.reconcile``).
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdk._internal import trace
from sdk._internal.timefmt import now_rfc3339
from sdk.errors import SdkError
from sdk.tasks.procs import exit_code, start_time

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.network.service import Attachment
    from sdk.runtime.cgroups import Cgroup
    from sdk.tasks.logs import JsonFileWriter


@dataclass(slots=True)
class Terminal:
    """Where a foreground run's streams go (the CLI's own fds)."""

    stdout: int = 1
    stderr: int = 2
    stdin: int | None = None      # forwarded to the container when it has OpenStdin
    proxy_signals: bool = True


@dataclass(slots=True)
class Running:
    pid: int
    cgroup: Cgroup
    fds: dict[int, str] = field(default_factory=dict)   # our read end -> stream name
    stdin_w: int | None = None
    pty: int | None = None
    started_mono: float = 0.0


def _log_writer(engine: Engine, doc: dict[str, Any]) -> JsonFileWriter | None:
    from sdk.tasks.logs import JsonFileWriter, parse_log_opts

    log_cfg = doc["HostConfig"].get("LogConfig") or {}
    if log_cfg.get("Type") == "none" or not doc.get("LogPath"):
        return None
    opts = dict(engine.config.log_opts or {})
    opts.update(log_cfg.get("Config") or {})
    # docker's rules: max-size counts in 1000s (10m = 10,000,000), max-file >= 1, ...
    parsed = parse_log_opts(opts)
    return JsonFileWriter(doc["LogPath"], max_size=parsed.max_size, max_file=parsed.max_file,
                          compress=parsed.compress)


class Supervisor:
    def __init__(self, engine: Engine, cid: str, terminal: Terminal | None = None) -> None:
        self.engine = engine
        self.cid = cid
        self.terminal = terminal
        self.selector: selectors.BaseSelector = None  # type: ignore[assignment] # serve()
        self.log: JsonFileWriter | None = None
        self.run: Running | None = None
        self.health: Any = None
        self.listener: Any = None
        self.clients: dict[int, Any] = {}
        self.stdin_once = False
        self.net: Attachment | None = None     # network side of the current start

    # ---- one start ------------------------------------------------------------
    def start(self) -> Running:
        """Start the container process once; raise SdkError (nothing left) on failure."""
        from sdk.containers.specgen import build_spec, write_etc_files
        from sdk.runtime.cgroups import Cgroup
        from sdk.runtime.spawn import Stdio
        from sdk.runtime.spawn import start as runtime_start

        engine = self.engine
        doc = engine.container_store.load(self.cid)
        if doc is None:
            raise SdkError(f"No such container: {self.cid}")
        join_pid = engine.tasks.network_peer_pid(doc)
        net = engine.tasks.network.prepare(doc)     # leases, held ports: released on error
        try:
            own, peers, gateway = engine.tasks.network.names_for(doc) if net.endpoints \
                else ([], [], "")
            link_env = engine.tasks.network.links_of(doc)[1] \
                if doc["HostConfig"].get("Links") else []
            spec = build_spec(doc, volumes=engine.volume_store, join_net_pid=join_pid,
                              net_peer_dir=engine.tasks.network_peer_dir(doc),
                              daemon_ulimits=engine.config.default_ulimits or {},
                              no_new_privileges_default=bool(engine.config.no_new_privileges),
                              link_env=link_env)
            write_etc_files(doc, engine.container_store.dir(self.cid), own, peers, gateway)
            engine.tasks.prefill_volumes(doc)
            trace.mark("network prepare + spec + etc files")
            cgroup = Cgroup.create(f"{spec.cgroup_parent}/{self.cid}", spec.resources,
                                   spec.device_rules)
            trace.mark("cgroup create")
        except BaseException:
            net.release(explicit=True)
            raise
        self.net = net

        def created(pid: int) -> None:
            cgroup.add(pid)
            net.attach(pid)

        opened: list[int] = []
        try:
            fds: dict[int, str] = {}
            stdin_r = stdin_w = None
            stdio = Stdio()
            if not spec.process.terminal:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                opened += [out_r, out_w, err_r, err_w]
                fds = {out_r: "stdout", err_r: "stderr"}
                if doc["Config"].get("OpenStdin"):
                    stdin_r, stdin_w = os.pipe()
                    opened += [stdin_r, stdin_w]
                stdio = Stdio(stdin=stdin_r, stdout=out_w, stderr=err_w)
            started = runtime_start(spec, stdio, on_created=created)
        except BaseException:
            for fd in opened:
                os.close(fd)
            cgroup.remove()
            net.release(explicit=True)
            raise
        for fd in opened:
            if fd not in fds and fd != stdin_w:
                os.close(fd)
        run = Running(pid=started.pid, cgroup=cgroup, fds=fds, stdin_w=stdin_w,
                      pty=started.pty_master, started_mono=time.monotonic())
        if run.pty is not None:
            run.fds = {run.pty: "stdout"}
            if self.terminal is not None and self.terminal.stdin is not None:
                from sdk.tasks.ttyrelay import copy_winsize

                copy_winsize(self.terminal.stdin, run.pty)
            if doc["Config"].get("OpenStdin"):
                run.stdin_w = os.dup(run.pty)
        pid_start = start_time(run.pid)
        my_pid = os.getpid()

        def mark_running(d: dict[str, Any]) -> None:
            st = d["State"]
            st.update(Status="running", Running=True, Paused=False, Restarting=False,
                      OOMKilled=False, Dead=False, Pid=run.pid, ExitCode=0, Error="",
                      StartedAt=now_rfc3339())
            if d["Config"].get("Healthcheck") and \
                    d["Config"]["Healthcheck"].get("Test", ["NONE"])[0] != "NONE":
                st["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
            d["_berth"]["monitor"] = {"pid": my_pid, "start": start_time(my_pid)}
            d["_berth"]["pid_start"] = pid_start
            d["_berth"]["stopped_by_user"] = False
            net.record(d)

        try:
            engine.container_store.modify(self.cid, mark_running)
        except BaseException:
            net.release(explicit=True)
            raise
        trace.mark("record running")
        self.run = run
        return run

    def record_start_error(self, error: SdkError) -> None:
        def change(d: dict[str, Any]) -> None:
            d["State"].update(Error=str(error), ExitCode=error.exit_code)

        try:
            self.engine.container_store.modify(self.cid, change)
        except SdkError:
            pass

    # ---- the loop ---------------------------------------------------------------
    def serve(self) -> int:
        """Supervise until the container is gone for good; returns the last exit code."""
        self.selector = selectors.DefaultSelector()
        try:
            return self._serve()
        finally:
            self.selector.close()
            if self.log:
                self.log.close()
                self.log = None

    def _serve(self) -> int:
        doc = self.engine.container_store.load(self.cid)
        assert doc is not None
        self.log = _log_writer(self.engine, doc)
        from sdk.tasks.restart import Backoff, RestartPolicy, should_restart

        backoff = Backoff()
        while True:
            assert self.run is not None
            code = self._watch(self.run)
            trace.mark("container ran (output copied)")
            doc = self._record_exit(self.run, code)
            trace.mark("record exit + cgroup/network cleanup")
            if doc is None:
                return code
            policy = RestartPolicy.parse(_policy_text(doc["HostConfig"]["RestartPolicy"]))
            ran_for = time.monotonic() - self.run.started_mono
            self.run = None
            if self.terminal is not None or not should_restart(
                    policy, code, doc["RestartCount"],
                    bool(doc["_berth"].get("stopped_by_user"))):
                break
            delay = backoff.next_delay(ran_for)
            if not self._wait_restart(delay):
                break
            try:
                self.start()
            except SdkError as exc:
                self.record_start_error(exc)
                break
        # an API client attached before the start removes it once it has read all output
        if doc["HostConfig"].get("AutoRemove") and not doc["_berth"].get("remove_by_attach"):
            self.engine.tasks.remove_after_exit(self.cid)
        return code

    def _wait_restart(self, delay: float) -> bool:
        me = {"pid": os.getpid(), "start": start_time(os.getpid())}

        def restarting(d: dict[str, Any]) -> None:
            d["State"].update(Status="restarting", Restarting=True)
            d["RestartCount"] = d.get("RestartCount", 0) + 1
            d["_berth"]["monitor"] = me

        self.engine.container_store.modify(self.cid, restarting)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            doc = self.engine.container_store.load(self.cid)
            if doc is None or doc["_berth"].get("stopped_by_user"):
                if doc is not None:
                    def stopped(d: dict[str, Any]) -> None:
                        d["State"].update(Status="exited", Restarting=False)

                    self.engine.container_store.modify(self.cid, stopped)
                return False
        return True

    def _watch(self, run: Running) -> int:
        sel = self.selector
        pidfd = os.pidfd_open(run.pid)
        sel.register(pidfd, selectors.EVENT_READ, "exit")
        for fd in run.fds:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, "out")
        term = self.terminal
        if term is not None and term.stdin is not None and run.stdin_w is not None:
            sel.register(term.stdin, selectors.EVENT_READ, "in")
        self._listen(run)
        old_handlers = self._proxy_signals(run) if term and term.proxy_signals else {}
        health = self._health_runner(run)
        exited = False
        try:
            while not exited:
                timeout = health.next_timeout() if health else None
                for key, _ in sel.select(timeout):
                    kind = key.data
                    if kind == "exit":
                        exited = True
                    elif kind == "out":
                        self._pump(key.fd, run)
                    elif kind == "in":
                        self._feed_stdin(key.fd, run)
                    elif kind == "health" and health:
                        health.on_output(key.fd)
                    elif kind == "accept":
                        self._accept()
                    elif kind == "client":
                        self._client_input(key.fd, run)
                if health:
                    health.tick()
            if health:
                # a probe is a process in the container's pid namespace: init stays
                # unreapable until it is reaped too, so end and reap it first
                health.cancel()
                health = None
            _, status = os.waitpid(run.pid, 0)
            code = exit_code(status)
            run.cgroup.kill_all()    # anything that left the pid namespace
            for fd in list(run.fds):
                os.set_blocking(fd, False)
                self._drain(fd, run)
        finally:
            if health:
                health.cancel()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            for fd in list(run.fds):
                self._close_stream(fd, run)
            if term is not None and term.stdin is not None:
                try:
                    sel.unregister(term.stdin)
                except (KeyError, ValueError):
                    pass
            sel.unregister(pidfd)
            os.close(pidfd)
            self._close_clients()
            if run.stdin_w is not None:
                os.close(run.stdin_w)
                run.stdin_w = None
        if self.log:
            self.log.flush()
        return code

    # ---- attach: clients on a unix socket get output and may send stdin ------------
    def _listen(self, run: Running) -> None:
        import socket

        if self.terminal is not None:
            return
        # through a directory fd: data roots can be deeper than sun_path's 108 bytes
        dfd = os.open(self.engine.container_store.dir(self.cid), os.O_PATH | os.O_DIRECTORY)
        path = f"/proc/self/fd/{dfd}/attach.sock"
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
            os.close(dfd)
        sock.listen(16)
        sock.setblocking(False)
        self.listener = sock
        self.tty = run.pty is not None
        doc = self.engine.container_store.load(self.cid) or {"Config": {}}
        # docker's StdinOnce (`run -i` attached): the first client's EOF is stdin's EOF
        self.stdin_once = bool(doc["Config"].get("StdinOnce"))
        self.selector.register(sock, selectors.EVENT_READ, "accept")

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        conn.settimeout(5.0)
        self.clients[conn.fileno()] = conn
        self.selector.register(conn, selectors.EVENT_READ, "client")

    def _client_input(self, fd: int, run: Running) -> None:
        conn = self.clients.get(fd)
        if conn is None:
            return
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            if self.stdin_once and run.stdin_w is not None:
                # a half-close: stdin ends, the client still reads the output
                os.close(run.stdin_w)
                run.stdin_w = None
                try:
                    self.selector.unregister(conn)
                except (KeyError, ValueError):
                    pass
                return
            self._drop_client(fd)
            return
        if run.stdin_w is not None:
            try:
                _write_all(run.stdin_w, data)
            except OSError:
                pass

    def _drop_client(self, fd: int) -> None:
        conn = self.clients.pop(fd, None)
        if conn is not None:
            try:
                self.selector.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()

    def _close_clients(self) -> None:
        for fd in list(self.clients):
            self._drop_client(fd)
        if self.listener is not None:
            try:
                self.selector.unregister(self.listener)
            except (KeyError, ValueError):
                pass
            self.listener.close()
            self.listener = None

    def _proxy_signals(self, run: Running) -> dict[int, Any]:
        def forward(signum: int, _frame: Any) -> None:
            try:
                os.kill(run.pid, signum)
            except ProcessLookupError:
                pass

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2):
            old[sig] = signal.signal(sig, forward)
        return old

    def _pump(self, fd: int, run: Running) -> bool:
        """Copy one chunk from a container stream; False when nothing more is ready."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return False
        except OSError as exc:     # EIO on a pty whose slave closed
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._close_stream(fd, run)
            return False
        self._emit(run.fds[fd], data)
        return True

    def _drain(self, fd: int, run: Running) -> None:
        while fd in run.fds and self._pump(fd, run):
            pass

    def _emit(self, stream: str, data: bytes) -> None:
        if self.log:
            self.log.write(stream, data)
        if self.clients:
            frame = data if getattr(self, "tty", False) else \
                bytes([1 if stream == "stdout" else 2, 0, 0, 0]) + len(data).to_bytes(4, "big") \
                + data
            for fd, conn in list(self.clients.items()):
                try:
                    conn.sendall(frame)
                except OSError:
                    self._drop_client(fd)
        term = self.terminal
        if term is not None:
            target = term.stdout if stream == "stdout" else term.stderr
            try:
                _write_all(target, data)
            except OSError:
                pass

    def _close_stream(self, fd: int, run: Running) -> None:
        if fd in run.fds:
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            del run.fds[fd]
            os.close(fd)

    def _feed_stdin(self, fd: int, run: Running) -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if run.stdin_w is None:
            return
        if not data:
            self.selector.unregister(fd)
            if run.pty is None:
                os.close(run.stdin_w)
                run.stdin_w = None
            return
        try:
            _write_all(run.stdin_w, data)
        except OSError:
            pass

    def _health_runner(self, run: Running) -> Any:
        doc = self.engine.container_store.load(self.cid)
        if doc is None:
            return None
        hc = doc["Config"].get("Healthcheck")
        if not hc or not hc.get("Test") or hc["Test"][0] == "NONE":
            return None
        from sdk.tasks.healthrun import HealthRunner

        return HealthRunner(self.engine, self.cid, run.pid, run.cgroup, self.selector, hc)

    def _record_exit(self, run: Running, code: int) -> dict[str, Any] | None:
        oom = False
        try:
            oom = run.cgroup.oom_killed()
        except Exception:   # noqa: BLE001 - a missing counter must not lose the exit
            pass
        try:
            run.cgroup.remove()
        except SdkError as exc:    # recorded anyway; `system prune` retries the cleanup
            import sys

            print(f"berth: cgroup cleanup of {self.cid[:12]} failed: {exc}", file=sys.stderr)

        def exited(d: dict[str, Any]) -> None:
            from sdk.network.service import cleared_settings

            st = d["State"]
            st.update(Status="exited", Running=False, Paused=False, Restarting=False,
                      OOMKilled=oom, Pid=0, ExitCode=code, FinishedAt=now_rfc3339())
            cleared_settings(d)
            # the monitor entry stays: this supervisor may still restart the container

        self._release_net()     # before "exited": a returning stop finds nothing held
        try:
            return self.engine.container_store.modify(self.cid, exited)
        except SdkError:
            return None    # removed while running (rm -f)

    def _release_net(self) -> None:
        """Leases, held ports and rules go back; the veth pair dies with the netns."""
        if self.net is not None:
            try:
                self.net.release()
            except SdkError as exc:   # repair retries: leases name this supervisor
                import sys

                print(f"berth: network cleanup of {self.cid[:12]} failed: {exc}",
                      file=sys.stderr)
            self.net = None


def _policy_text(policy: dict[str, Any]) -> str:
    name = policy.get("Name") or "no"
    count = policy.get("MaximumRetryCount") or 0
    return f"{name}:{count}" if name == "on-failure" and count else name


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]


def spawn_detached(engine: Engine, cid: str) -> None:
    """Start ``cid`` under a supervisor that outlives this process.

    Returns once the container runs; raises the start error otherwise.  The
    supervisor is double-forked (reparented to init or the nearest subreaper) and
    opens its own database connection: nothing from this process's sqlite handle is
    used across the fork.
    """
    engine.db.close()     # no sqlite state may cross the fork (see Database.conn)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # intermediate
        try:
            os.close(r)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _supervisor_main(engine, cid, w)
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    if not data:
        raise SdkError("the container's supervisor died before the container started")
    message = json.loads(data)
    if message.get("ok"):
        return
    raise _error_from(message)


def _error_from(message: dict[str, Any]) -> SdkError:
    from sdk import errors

    cls = getattr(errors, message.get("kind", "SdkError"), errors.SdkError)
    if not (isinstance(cls, type) and issubclass(cls, errors.SdkError)) or \
            cls is errors.ContainerError:
        cls = errors.SdkError
    return cls(message.get("error", "container failed to start"))


def _supervisor_main(parent_engine: Engine, cid: str, ready_fd: int) -> None:
    # keep nothing the caller had open (its pipes, sockets, files): a caller waiting
    # for EOF on one of them must not wait for this container to end
    parent_engine.db.close()
    os.closerange(3, ready_fd)
    os.closerange(ready_fd + 1, os.sysconf("SC_OPEN_MAX"))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)
    # the supervisor's own stderr goes to a file beside the container's log
    err = os.open(parent_engine.container_store.dir(cid) / "supervisor.log",
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.dup2(err, 2)
    os.close(err)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    engine = parent_engine.reopen()
    sup = Supervisor(engine, cid)
    try:
        sup.start()
    except SdkError as exc:
        sup.record_start_error(exc)
        _report(ready_fd, {"ok": False, "error": str(exc), "kind": type(exc).__name__})
        doc = engine.container_store.load(cid)
        if doc is not None and doc["HostConfig"].get("AutoRemove"):
            engine.tasks.remove_after_exit(cid)
        return
    except BaseException as exc:  # noqa: BLE001 - report anything to the CLI
        _report(ready_fd, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return
    _report(ready_fd, {"ok": True})
    try:
        sup.serve()
    except BaseException:  # noqa: BLE001 - leave a trace, never an unsupervised container
        import traceback

        traceback.print_exc()
        if sup.run is not None:
            try:
                sup.run.cgroup.kill_all()
            except Exception:  # noqa: BLE001
                pass
        sup._release_net()
        raise


def _report(fd: int, message: dict[str, Any]) -> None:
    try:
        os.write(fd, json.dumps(message).encode())
    finally:
        os.close(fd)

