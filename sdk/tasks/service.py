"""Operations on running containers: start, stop, kill, wait, pause, exec, top, stats.

Any CLI process may run these; the process that owns a container's init is its
supervisor (see supervisor.py).  Liveness is checked by pid *and* start time, so a
reused pid is never mistaken for a container, and ``reconcile`` repairs records whose
supervisor died (kill -9, reboot): the container is marked exited and its cgroup is
removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sdk._internal.signals import parse_signal
from sdk._internal.timefmt import now_rfc3339
from sdk.errors import Conflict, InvalidArgument, SdkError
from sdk.tasks.procs import alive, exit_code

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.network.service import NetworkService
    from sdk.runtime.cgroups import Cgroup
    from sdk.tasks.supervisor import Terminal

RUNNING_STATES = ("running", "paused", "restarting")


class TaskService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def store(self) -> Any:
        return self.engine.container_store

    @property
    def network(self) -> NetworkService:
        return self.engine.networks.service

    # ---- state repair ---------------------------------------------------------------
    def reconcile(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Fix a record whose supervisor is gone; returns the (possibly new) record."""
        if "_berth_endpoint" in doc["HostConfig"]:
            try:
                doc = self.store.modify(doc["Id"], self.network.normalize)
            except SdkError:
                pass
        state = doc["State"]
        if state["Status"] not in RUNNING_STATES:
            return doc
        mon = doc["_berth"].get("monitor") or {}
        if mon and alive(mon.get("pid", 0), mon.get("start", 0)):
            return doc
        # supervisor is dead: its container died with it (PDEATHSIG); clean up.
        try:
            self.cgroup_of(doc).remove()
        except SdkError:
            pass          # still busy: Engine.repair (system prune) tries again
        try:
            self.network.release_container(doc["Id"], explicit=True)
        except SdkError:
            pass          # leases name the dead supervisor: Engine.repair retries

        def dead(d: dict[str, Any]) -> None:
            from sdk.network.service import cleared_settings

            if d["State"]["Status"] not in RUNNING_STATES:
                return
            cleared_settings(d)
            d["State"].update(Status="exited", Running=False, Paused=False,
                              Restarting=False, Pid=0, ExitCode=137,
                              Error="the container's supervisor died",
                              FinishedAt=now_rfc3339())
            d["_berth"]["monitor"] = None

        try:
            return self.store.modify(doc["Id"], dead)
        except SdkError:
            return doc

    def get(self, ref: str) -> dict[str, Any]:
        return self.reconcile(self.store.get(ref))

    def all(self) -> list[dict[str, Any]]:
        return [self.reconcile(d) for d in self.store.all()]

    def update(self, ref: str, changes: dict[str, Any]) -> list[str]:
        """``docker update``: HostConfig ``changes`` applied in place (see update.py)."""
        from sdk.tasks.update import update

        return update(self, ref, changes)

    def briefs(self) -> list[dict[str, Any]]:
        """``all()`` for listings: each record's brief (ContainerStore.brief), reconciled."""
        return [self.reconcile(d) for d in self.store.briefs()]

    def cgroup_of(self, doc: dict[str, Any]) -> Cgroup:
        from sdk.runtime.cgroups import Cgroup

        parent = (doc["HostConfig"].get("CgroupParent") or "berth").strip("/")
        return Cgroup.open(f"{parent}/{doc['Id']}")

    def running_pid(self, doc: dict[str, Any]) -> int:
        st = doc["State"]
        if st["Status"] not in ("running", "paused") or not st.get("Pid"):
            raise Conflict(f"Container {doc['Id']} is not running")
        if not alive(st["Pid"], doc["_berth"].get("pid_start", 0)):
            raise Conflict(f"Container {doc['Id']} is not running")
        return int(st["Pid"])

    def network_peer_dir(self, doc: dict[str, Any]) -> str | None:
        """container:NAME: the directory whose hosts and resolv.conf are shared."""
        mode = doc["HostConfig"].get("NetworkMode") or ""
        if not mode.startswith("container:"):
            return None
        peer = self.store.get(mode.split(":", 1)[1])
        return str(self.store.dir(peer["Id"]))

    def network_peer_pid(self, doc: dict[str, Any]) -> int | None:
        mode = doc["HostConfig"].get("NetworkMode") or ""
        if not mode.startswith("container:"):
            return None
        peer = self.get(mode.split(":", 1)[1])
        return self.running_pid(peer)

    # ---- start ----------------------------------------------------------------------
    def start(self, ref: str) -> dict[str, Any]:
        """``docker start``: detached, under its own supervisor."""
        from sdk.tasks.supervisor import spawn_detached

        doc = self.get(ref)
        if doc["State"]["Status"] in ("running", "restarting"):
            return doc
        if doc["State"]["Status"] == "paused":
            raise Conflict("cannot start a paused container, try unpause instead")
        refuse_dead(doc)
        spawn_detached(self.engine, doc["Id"])
        return self.store.get(doc["Id"])

    def run_attached(self, cid: str, terminal: Terminal) -> int:
        """Start and supervise in this process (``run`` without -d); returns exit code."""
        from sdk.tasks.supervisor import Supervisor

        sup = Supervisor(self.engine, cid, terminal)
        try:
            sup.start()
        except SdkError as exc:
            sup.record_start_error(exc)
            doc = self.store.load(cid)
            if doc is not None and doc["HostConfig"].get("AutoRemove"):
                self.remove_after_exit(cid)
            raise
        return sup.serve()

    def remove_after_exit(self, cid: str) -> None:
        from sdk._internal import trace

        try:
            self.store.delete(cid, remove_volumes=True)
        except SdkError:
            pass
        trace.mark("--rm: delete record and dirs")

    def prefill_volumes(self, doc: dict[str, Any]) -> None:
        """Copy image content into empty new volumes on first start (docker's copy-up)."""
        from sdk.tasks.copyup import copy_up

        if doc["_berth"].get("prefilled"):
            return
        todo = [m for m in doc.get("Mounts") or []
                if m["Type"] == "volume" and not m.get("_nocopy")]
        if todo:
            copy_up(self.engine, doc, todo)

        def mark(d: dict[str, Any]) -> None:
            d["_berth"]["prefilled"] = True

        self.store.modify(doc["Id"], mark)

    # ---- stop / kill ----------------------------------------------------------------
    def kill(self, ref: str, sig: str | int = "KILL") -> None:
        doc = self.get(ref)
        number = parse_signal(sig)
        pid = self.running_pid(doc)
        self._event(doc, "kill", signal=number)
        if number == signal.SIGKILL:
            self._mark_user_stop(doc["Id"])
            self.cgroup_of(doc).kill_all(signal.SIGKILL)
        else:
            os.kill(pid, number)

    def _event(self, doc: dict[str, Any], action: str, **extra: Any) -> None:
        from sdk import events

        with self.store.db.write() as conn:
            events.record(conn, "container", action, doc["Id"],
                          dict(events.container_attrs(doc), **extra))

    def _mark_user_stop(self, cid: str) -> None:
        def mark(d: dict[str, Any]) -> None:
            d["_berth"]["stopped_by_user"] = True

        self.store.modify(cid, mark)

    def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        doc = self.get(ref)
        st = doc["State"]
        if st["Status"] == "restarting":
            self._mark_user_stop(doc["Id"])
            self._wait_not_running(doc["Id"], 5.0)
            return
        if st["Status"] not in ("running", "paused"):
            return
        self._mark_user_stop(doc["Id"])
        pid = self.running_pid(doc)
        if timeout is None:
            timeout = doc["Config"].get("StopTimeout", 10)
        number = parse_signal(sig or doc["Config"].get("StopSignal") or "TERM")
        cgroup = self.cgroup_of(doc)
        if st["Status"] == "paused":
            cgroup.thaw()
        pidfd = os.pidfd_open(pid)
        try:
            os.kill(pid, number)
            import select

            if timeout is None or timeout < 0:
                ready = select.select([pidfd], [], [])[0]
            else:
                ready = select.select([pidfd], [], [], timeout)[0]
            if not ready:
                cgroup.kill_all(signal.SIGKILL)
        finally:
            os.close(pidfd)
        self._wait_not_running(doc["Id"], 10.0)
        self._event(doc, "stop")

    def _wait_not_running(self, cid: str, limit: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + limit
        delay = 0.002
        while True:
            doc = self.store.load(cid)
            if doc is None:
                return None
            doc = self.reconcile(doc)
            if doc["State"]["Status"] not in RUNNING_STATES:
                return doc
            if time.monotonic() > deadline:
                return doc
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def restart(self, ref: str, timeout: int | None = None) -> None:
        doc = self.get(ref)
        self.stop(doc["Id"], timeout)
        self.start(doc["Id"])

    def wait(self, ref: str, condition: str = "not-running",
             timeout: float | None = None) -> dict[str, Any]:
        """docker-py's ``wait``: {"StatusCode": N, "Error": None}."""
        doc = self.get(ref)
        cid = doc["Id"]
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        seen_running = doc["State"]["Status"] in RUNNING_STATES
        delay = 0.002
        while True:
            cur = self.store.load(cid)
            if cur is None:
                row = self.store.db.one("SELECT code FROM exits WHERE id=?", (cid,))
                code = row["code"] if row else doc["State"]["ExitCode"]
                return {"StatusCode": code, "Error": None}
            cur = self.reconcile(cur)
            running = cur["State"]["Status"] in RUNNING_STATES
            seen_running = seen_running or running
            doc = cur
            if condition == "not-running" and not running:
                break
            if condition == "next-exit" and seen_running and not running:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise SdkError(f"timed out waiting for container {cid[:12]}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        err = doc["State"].get("Error") or None
        return {"StatusCode": doc["State"]["ExitCode"], "Error": {"Message": err}
                if err else None}

    # ---- pause ----------------------------------------------------------------------
    def pause(self, ref: str) -> None:
        doc = self.get(ref)
        if doc["State"]["Status"] == "paused":
            raise Conflict(f"Container {doc['Id']} is already paused")
        self.running_pid(doc)
        self.cgroup_of(doc).freeze()

        def paused(d: dict[str, Any]) -> None:
            d["State"].update(Status="paused", Paused=True)

        self.store.modify(doc["Id"], paused)

    def unpause(self, ref: str) -> None:
        doc = self.get(ref)
        if doc["State"]["Status"] != "paused":
            raise Conflict(f"Container {doc['Id']} is not paused")
        self.cgroup_of(doc).thaw()

        def resumed(d: dict[str, Any]) -> None:
            d["State"].update(Status="running", Paused=False)

        self.store.modify(doc["Id"], resumed)

    # ---- remove ---------------------------------------------------------------------
    def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> str:
        doc = self.get(ref)
        status = doc["State"]["Status"]
        if status in RUNNING_STATES:
            if not force:
                raise Conflict(
                    f"cannot remove container \"{doc['Name']}\": container is {status}: "
                    "stop the container before removing or force remove")
            self._mark_user_stop(doc["Id"])
            if status == "paused":
                self.cgroup_of(doc).thaw()
            if doc["State"].get("Pid"):
                self.cgroup_of(doc).kill_all(signal.SIGKILL)
            self._wait_not_running(doc["Id"], 10.0)
        self.store.delete(doc["Id"], remove_volumes=volumes)
        return doc["Id"]

    # ---- exec -----------------------------------------------------------------------
    def exec_process(self, doc: dict[str, Any], cmd: Sequence[str], *, user: str | None = None,
                     env: Sequence[str] = (), workdir: str | None = None,
                     privileged: bool = False, tty: bool = False) -> Any:
        from sdk.containers.specgen import build_spec
        from sdk.runtime.spec import Process

        if not cmd:
            raise InvalidArgument("no command specified")
        spec = build_spec(doc, volumes=self.engine.volume_store,
                          daemon_ulimits=self.engine.config.default_ulimits or {})
        base = spec.process
        caps = base.capabilities
        if privileged:
            from sdk.runtime.defaults import ALL_CAPABILITIES

            caps = frozenset(ALL_CAPABILITIES)
        from sdk.containers.options import merge_env

        return Process(args=tuple(cmd), env=tuple(merge_env(base.env, list(env))),
                       cwd=workdir or base.cwd, user=base.user if user is None else user,
                       additional_groups=base.additional_groups, terminal=tty,
                       capabilities=caps, no_new_privileges=base.no_new_privileges,
                       rlimits=base.rlimits, seccomp=base.seccomp,
                       selinux_label=base.selinux_label)   # docker: the container's label

    def exec(self, ref: str, cmd: Sequence[str], *, stdin: int | None = None,
             stdout: int | None = 1, stderr: int | None = 2, user: str | None = None,
             env: Sequence[str] = (), workdir: str | None = None, privileged: bool = False,
             detach: bool = False) -> int:
        """Run a command in a running container with the given fds; returns exit code."""
        from sdk.runtime.execin import exec_in
        from sdk.runtime.spawn import Stdio

        doc = self.get(ref)
        # as in docker: an exec in a privileged container is privileged too
        privileged = privileged or bool(doc["HostConfig"].get("Privileged"))
        if doc["State"]["Status"] == "paused":
            raise Conflict(f"Container {doc['Id']} is paused, unpause the container before "
                           "exec")
        pid = self.running_pid(doc)
        process = self.exec_process(doc, cmd, user=user, env=env, workdir=workdir,
                                    privileged=privileged)
        cgroup = self.cgroup_of(doc)
        if detach:
            child = os.fork()
            if child == 0:
                try:
                    os.setsid()
                    started = exec_in(pid, process, Stdio(), on_created=cgroup.add,
                                      privileged=privileged, die_with_parent=False)
                    os.waitpid(started.pid, 0)
                finally:
                    os._exit(0)
            return 0
        started = exec_in(pid, process, Stdio(stdin=stdin, stdout=stdout, stderr=stderr),
                          on_created=cgroup.add, privileged=privileged)
        _, status = os.waitpid(started.pid, 0)
        return exit_code(status)

    def exec_capture(self, ref: str, cmd: Sequence[str], **kwargs: Any) -> tuple[int, bytes]:
        """exec with stdout+stderr captured (docker-py ``exec_run``)."""
        import tempfile

        with tempfile.TemporaryFile() as out:
            code = self.exec(ref, cmd, stdin=None, stdout=out.fileno(),
                             stderr=out.fileno(), **kwargs)
            out.seek(0)
            return code, out.read()

    def exec_tty(self, ref: str, cmd: Sequence[str], *, user: str | None = None,
                 env: Sequence[str] = (), workdir: str | None = None,
                 privileged: bool = False, interactive: bool = True) -> int:
        from sdk.runtime.execin import exec_in
        from sdk.runtime.spawn import Stdio
        from sdk.tasks.ttyrelay import relay

        doc = self.get(ref)
        # as in docker: an exec in a privileged container is privileged too
        privileged = privileged or bool(doc["HostConfig"].get("Privileged"))
        pid = self.running_pid(doc)
        process = self.exec_process(doc, cmd, user=user, env=list(env) + ["TERM=xterm"]
                                    if not any(e.startswith("TERM=") for e in env) else env,
                                    workdir=workdir, privileged=privileged, tty=True)
        cgroup = self.cgroup_of(doc)
        started = exec_in(pid, process, Stdio(), on_created=cgroup.add, privileged=privileged)
        assert started.pty_master is not None
        relay(started.pty_master, started.pid, interactive=interactive)
        _, status = os.waitpid(started.pid, 0)
        return exit_code(status)

    def exec_spawn(self, ref: str, cmd: Sequence[str], *, tty: bool, stdin: int | None = None,
                   stdout: int | None = None, stderr: int | None = None,
                   user: str | None = None, env: Sequence[str] = (),
                   workdir: str | None = None, privileged: bool = False) -> Any:
        """Start an exec and return at once (``Started``: pid, and the pty master with
        ``tty``); the caller relays the streams and reaps the pid.  For the API server."""
        from sdk.runtime.execin import exec_in
        from sdk.runtime.spawn import Stdio

        doc = self.get(ref)
        # as in docker: an exec in a privileged container is privileged too
        privileged = privileged or bool(doc["HostConfig"].get("Privileged"))
        if doc["State"]["Status"] == "paused":
            raise Conflict(f"Container {doc['Id']} is paused, unpause the container before "
                           "exec")
        pid = self.running_pid(doc)
        if tty and not any(e.startswith("TERM=") for e in env):
            env = [*env, "TERM=xterm"]
        process = self.exec_process(doc, cmd, user=user, env=env, workdir=workdir,
                                    privileged=privileged, tty=tty)
        stdio = Stdio() if tty else Stdio(stdin=stdin, stdout=stdout, stderr=stderr)
        return exec_in(pid, process, stdio, on_created=self.cgroup_of(doc).add,
                       privileged=privileged, die_with_parent=False)

    # ---- inspection -----------------------------------------------------------------
    def top(self, ref: str, ps_args: str = "-ef") -> dict[str, Any]:
        doc = self.get(ref)
        self.running_pid(doc)
        pids = set(self.cgroup_of(doc).procs())
        if shutil.which("ps") is None:
            raise SdkError("top needs ps (procps) on the host")
        args = ps_args.split() if ps_args else ["-ef"]
        import subprocess

        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise InvalidArgument(f"ps {ps_args}: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
        titles = lines[0].split()
        pid_col = titles.index("PID") if "PID" in titles else 1
        rows = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_col and fields[pid_col].isdigit() and \
                    int(fields[pid_col]) in pids:
                rows.append(fields)
        return {"Titles": titles, "Processes": rows}

    def stats(self, ref: str) -> dict[str, Any]:
        doc = self.get(ref)
        if doc["State"]["Status"] not in ("running", "paused"):
            return _empty_stats(doc)
        s = self.cgroup_of(doc).stats()
        return {
            "read": now_rfc3339(), "name": doc["Name"], "id": doc["Id"],
            "pids_stats": {"current": s.pids_current, "limit": s.pids_limit or None},
            "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_usage_ns,
                                        "usage_in_kernelmode": s.cpu_system_ns,
                                        "usage_in_usermode": s.cpu_user_ns},
                          "system_cpu_usage": _system_cpu_ns(),
                          "online_cpus": s.online_cpus},
            "memory_stats": {"usage": s.memory_usage, "limit": s.memory_limit,
                             "stats": {"cache": s.memory_cache}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"op": "read", "value": s.blkio_read_bytes},
                {"op": "write", "value": s.blkio_write_bytes}]},
            "networks": {},
        }


def _empty_stats(doc: dict[str, Any]) -> dict[str, Any]:
    return {"read": now_rfc3339(), "name": doc["Name"], "id": doc["Id"],
            "pids_stats": {}, "cpu_stats": {"cpu_usage": {"total_usage": 0},
                                            "online_cpus": 0},
            "memory_stats": {}, "blkio_stats": {}, "networks": {}}


def _system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields) * 1_000_000_000 // ticks


def refuse_dead(doc: dict[str, Any]) -> None:
    """docker's refusal to start a container whose removal began or failed."""
    if doc["State"].get("Dead") or doc["State"]["Status"] == "dead" or \
            doc.get("_berth", {}).get("removing"):
        raise Conflict("container is marked for removal and cannot be started")
