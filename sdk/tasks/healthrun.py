"""Runs a container's health check inside the supervisor's event loop.

Each probe is an exec into the container (its namespaces and cgroup) whose output
and exit are watched through the same selector as the container's logs, so a slow
probe never blocks log copying.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from typing import TYPE_CHECKING, Any

from sdk._internal.timefmt import now_rfc3339
from sdk.tasks.procs import exit_code

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.runtime.cgroups import Cgroup


class HealthRunner:
    def __init__(self, engine: Engine, cid: str, pid: int, cgroup: Cgroup,
                 selector: selectors.BaseSelector, healthcheck: dict[str, Any]) -> None:
        from sdk.tasks.health import HealthConfig, HealthState

        self.engine = engine
        self.cid = cid
        self.pid = pid
        self.cgroup = cgroup
        self.selector = selector
        self.cfg = HealthConfig.from_docker(healthcheck)
        self.state = HealthState(retries=self.cfg.retries)
        self.started = time.monotonic()
        self.next_at = self.started + self._delay()
        self.probe: dict[str, Any] | None = None

    def _delay(self) -> float:
        in_start = time.monotonic() - self.started < self.cfg.start_period
        return self.cfg.start_interval if in_start and self.cfg.start_period else \
            self.cfg.interval

    def next_timeout(self) -> float:
        now = time.monotonic()
        if self.probe is not None:
            return max(0.0, self.probe["deadline"] - now)
        return max(0.0, self.next_at - now)

    def tick(self) -> None:
        now = time.monotonic()
        if self.probe is not None:
            if now >= self.probe["deadline"]:
                self._finish(timed_out=True)
            return
        if now >= self.next_at:
            self._launch()

    def _launch(self) -> None:
        from sdk.runtime.execin import exec_in
        from sdk.runtime.spawn import Stdio

        test = self.cfg.test
        args = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        doc = self.engine.container_store.load(self.cid)
        if doc is None:
            return
        process = self.engine.tasks.exec_process(doc, args)
        r, w = os.pipe()
        start = now_rfc3339()
        try:
            started = exec_in(self.pid, process, Stdio(stdout=w, stderr=w),
                              on_created=self.cgroup.add)
        except Exception as exc:   # noqa: BLE001 - a failed probe is a failed check
            os.close(r)
            os.close(w)
            self._record(start, 1 if not hasattr(exc, "exit_code") else exc.exit_code,
                         str(exc))
            return
        os.close(w)
        os.set_blocking(r, False)
        self.selector.register(r, selectors.EVENT_READ, "health")
        self.probe = {"pid": started.pid, "fd": r, "out": b"", "start": start,
                      "deadline": time.monotonic() + self.cfg.timeout}

    def on_output(self, fd: int) -> None:
        if self.probe is None or fd != self.probe["fd"]:
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            if len(self.probe["out"]) <= 8192:     # docker keeps the first 4096 bytes
                self.probe["out"] += data
            return
        self._finish(timed_out=False)

    def _finish(self, *, timed_out: bool) -> None:
        probe = self.probe
        assert probe is not None
        self.probe = None
        if timed_out:
            try:
                os.kill(probe["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(probe["pid"], 0)
        try:
            self.selector.unregister(probe["fd"])
        except (KeyError, ValueError):
            pass
        os.close(probe["fd"])
        from sdk.tasks.health import cap_output, timeout_output

        if timed_out:
            code = -1
            output = timeout_output(self.cfg.timeout)
        else:
            code = exit_code(status)
            output = cap_output(probe["out"].decode(errors="replace"))
        self._record(probe["start"], code, output)

    def _record(self, start: str, code: int, output: str) -> None:
        in_start = time.monotonic() - self.started < self.cfg.start_period
        self.state.record(start, now_rfc3339(), code, output, in_start)
        health = self.state.to_docker()

        def update(d: dict[str, Any]) -> None:
            d["State"]["Health"] = health

        try:
            self.engine.container_store.modify(self.cid, update)
        except Exception:   # noqa: BLE001 - removed meanwhile
            pass
        self.next_at = time.monotonic() + self._delay()

    def cancel(self) -> None:
        if self.probe is not None:
            try:
                os.kill(self.probe["pid"], signal.SIGKILL)
                os.waitpid(self.probe["pid"], 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            try:
                self.selector.unregister(self.probe["fd"])
            except (KeyError, ValueError):
                pass
            os.close(self.probe["fd"])
            self.probe = None

