"""Container cgroups on v1, v2 and hybrid hosts, with Docker's flag semantics.

A container cgroup is one relative path (``berth/<id>``) created in every hierarchy:

* v2: one directory; the controllers it needs are enabled in ``cgroup.subtree_control``
  of each ancestor that may have them (never in one holding processes, which the
  "no internal processes" rule forbids; the root is exempt).
* v1: one directory per mounted hierarchy, ``name=systemd`` included, so a process is
  fully placed; new cpuset directories get the parent's cpus/mems before anything can
  join them.
* hybrid: the v1 directories enforce the limits and a directory in the (controller-less)
  unified hierarchy tracks every process: ``populated`` and ``cgroup.kill`` come from
  there.

The pieces live in small modules: ``cgroups_fs`` (finding hierarchies, file I/O),
``cgroups_limits`` (Docker flags -> knob writes), ``cgroups_devices`` (device rules and
the v2 eBPF filter), ``cgroups_stats``.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Container, Sequence

from sdk.errors import Conflict, InvalidArgument, RuntimeFailure, SdkError
from sdk.runtime import cgroups_devices as devices
from sdk.runtime import cgroups_fs as fs
from sdk.runtime import cgroups_limits as limits
from sdk.runtime import cgroups_stats as stats
from sdk.runtime.cgroups_fs import ROOT, CgroupMode, Layout
from sdk.runtime.cgroups_limits import Knob, shares_to_weight
from sdk.runtime.cgroups_stats import CgroupStats
from sdk.runtime.spec import DeviceRule, Resources

__all__ = ["CgroupMode", "CgroupStats", "Cgroup", "detect_mode", "cleanup_stale",
           "shares_to_weight"]

V2_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
FREEZE_TIMEOUT = 5.0
RMDIR_TIMEOUT = 2.0
# errnos meaning "the value is wrong" rather than "the kernel could not do it"
_BAD_VALUE = {errno.EINVAL, errno.ERANGE, errno.EOVERFLOW, errno.ENODEV}


def detect_mode(root: str = ROOT) -> CgroupMode:
    """v2 (cgroup2 at root), v1, or hybrid (v1 controllers plus a cgroup2 below root)."""
    return fs.discover(root).mode


def _clean_path(path: str) -> str:
    parts = path.strip("/").split("/")
    if not path.strip("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise InvalidArgument(f"invalid cgroup path {path!r}: want relative names such as "
                              "'berth/<container id>'")
    return "/".join(parts)


class Cgroup:
    """One container's cgroup in every hierarchy of a root."""

    path: str
    mode: CgroupMode

    def __init__(self, path: str, *, root: str = ROOT) -> None:
        self.path = _clean_path(path)
        self._layout: Layout = fs.discover(root)
        self.mode = self._layout.mode
        self._dirs = [f"{h}/{self.path}" for h in self._layout.hierarchies()]

    def __repr__(self) -> str:
        return f"Cgroup({self.path!r}, mode={self.mode}, root={self._layout.root!r})"

    # ---- where things are ---------------------------------------------------------------
    def _dir(self, controller: str) -> str:
        """This cgroup's dir for ``controller`` ("" when no hierarchy has it)."""
        if self.mode == CgroupMode.V2:
            return self._dirs[0]
        mount = self._layout.v1.get(controller)
        return f"{mount}/{self.path}" if mount else ""

    def _track_dir(self) -> str:
        """The dir that sees every process: the cgroup2 one, else a v1 one."""
        if self._layout.unified:
            return f"{self._layout.unified}/{self.path}"
        for ctl in ("freezer", "pids", "memory", "cpu", "name=systemd"):
            if d := self._dir(ctl):
                return d
        return self._dirs[0]

    def _exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs)

    # ---- lifecycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str, resources: Resources, device_rules: Sequence[DeviceRule] = (),
               *, root: str = ROOT) -> Cgroup:
        """Create the cgroup everywhere and apply limits and device rules.

        Nothing is left behind on failure: every directory this call made is removed
        before the error (InvalidArgument for values, RuntimeFailure for the kernel)
        propagates.  A leftover empty cgroup of the same path (a crash) is replaced.
        """
        cg = cls(path, root=root)
        limits.validate(resources, initial=True)
        devices.validate_rules(device_rules)
        if cg._exists():
            if cg.populated():
                raise Conflict(f"cgroup {cg.path} already exists and has processes "
                               f"{cg.procs()[:8]}")
            cg.remove()
        created: list[str] = []
        try:
            for hierarchy in cg._layout.hierarchies():
                cg._make_path(hierarchy, created)
            cg._apply(cg._plan(resources, initial=True))
            cg._apply_devices(device_rules)
        except BaseException:
            for d in reversed(created):
                try:
                    fs.remove_dir(d)
                except OSError:
                    pass            # an intermediate another container started using
            raise
        return cg

    @classmethod
    def open(cls, path: str, *, root: str = ROOT) -> Cgroup:
        """An existing cgroup (exec, stats, cleanup); a missing one reads as empty."""
        return cls(path, root=root)

    def _make_path(self, hierarchy: str, created: list[str]) -> None:
        current = hierarchy
        cpuset = self.mode != CgroupMode.V2 and self._layout.v1.get("cpuset") == hierarchy
        for part in self.path.split("/"):
            if self.mode == CgroupMode.V2:
                self._delegate(current)
            parent, current = current, f"{current}/{part}"
            try:
                fs.make_dir(current)
                created.append(current)
            except FileExistsError:
                pass
            except OSError as exc:
                raise RuntimeFailure(f"cannot create cgroup {current}: {exc.strerror}") \
                    from None
            if cpuset:
                self._seed_cpuset(parent, current)

    @staticmethod
    def _seed_cpuset(parent: str, d: str) -> None:
        """v1 cpuset dirs start with empty cpus/mems, and nothing can join those."""
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if fs.read(f"{d}/{knob}").strip():
                continue
            value = fs.read(f"{parent}/{knob}").strip()
            try:
                fs.write(f"{d}/{knob}", value)
            except OSError as exc:
                raise RuntimeFailure(f"cannot copy {knob} {value!r} from {parent} to {d}: "
                                     f"{exc.strerror}") from None

    def _delegate(self, d: str) -> None:
        """Enable our controllers below ``d`` (v2), where the kernel lets us."""
        if d != self._layout.unified and fs.read(f"{d}/cgroup.procs").strip():
            return                  # "no internal processes": a knob error says what's missing
        available = fs.read(f"{d}/cgroup.controllers").split()
        enabled = fs.read(f"{d}/cgroup.subtree_control").split()
        for ctl in V2_CONTROLLERS:
            if ctl in available and ctl not in enabled:
                try:
                    fs.write(f"{d}/cgroup.subtree_control", f"+{ctl}")
                except OSError:
                    pass            # likewise reported by the first knob that needs it

    def add(self, pid: int) -> None:
        """Move ``pid`` into the cgroup in every hierarchy."""
        for d in self._dirs:
            try:
                fs.write(f"{d}/cgroup.procs", str(pid))
            except OSError as exc:
                raise RuntimeFailure(f"cannot move process {pid} into cgroup {d}: "
                                     f"{exc.strerror}") from None

    def procs(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups."""
        found: set[int] = set()
        for dirpath, _dirs, _files in os.walk(self._track_dir()):
            found.update(int(p) for p in fs.read(f"{dirpath}/cgroup.procs").split()
                         if p.isdigit())
        return sorted(found)

    def populated(self) -> bool:
        if self._layout.unified:
            events = fs.keyed(fs.read(f"{self._track_dir()}/cgroup.events"))
            if "populated" in events:
                return events["populated"] == "1"
        return bool(self.procs())

    # ---- limits -------------------------------------------------------------------------
    def update(self, resources: Resources) -> None:
        """``docker update``: apply the non-zero fields of ``resources`` in place."""
        if not self._exists():
            raise RuntimeFailure(f"cannot update cgroup {self.path}: it does not exist")
        limits.validate(resources, initial=False)
        self._apply(self._plan(resources, initial=False))

    def _plan(self, resources: Resources, *, initial: bool) -> list[Knob]:
        reader = _Reader(self)
        if self.mode == CgroupMode.V2:
            return limits.plan_v2(resources, reader, initial=initial)
        return limits.plan_v1(resources, reader, initial=initial)

    def _apply(self, knobs: Sequence[Knob]) -> None:
        for knob in knobs:
            d = self._dir(knob.controller)
            if not d:
                raise InvalidArgument(f"{knob.flag} needs the {knob.controller} cgroup "
                                      f"controller, which is not mounted under "
                                      f"{self._layout.root}")
            try:
                fs.write(f"{d}/{knob.file}", knob.value)
            except OSError as exc:
                raise self._knob_error(knob, d, exc) from None

    def _knob_error(self, knob: Knob, d: str, exc: OSError) -> SdkError:
        where = f"{knob.file} in {d}"
        if exc.errno == errno.ENOENT:
            if self.mode == CgroupMode.V2:
                have = fs.read(f"{d}/cgroup.controllers").split()
                why = (f"the {knob.controller} controller is not enabled for this cgroup "
                       f"(its parent delegates: {' '.join(have) or 'nothing'})")
            else:
                why = "this kernel does not have that knob"
            return InvalidArgument(f"cannot set {knob.flag}: there is no {where}: {why}")
        kind = InvalidArgument if exc.errno in _BAD_VALUE else RuntimeFailure
        return kind(f"cannot set {knob.flag}: the kernel refused {knob.value!r} for {where}: "
                    f"{exc.strerror}")

    def _apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        if not rules:
            return
        if self.mode == CgroupMode.V2:
            devices.attach_device_filter(self._dirs[0], rules)
            return
        d = self._dir("devices")
        if not d:
            raise RuntimeFailure("device rules need the devices cgroup controller, which is "
                                 f"not mounted under {self._layout.root}")
        for file, line in devices.v1_writes(rules):
            try:
                fs.write(f"{d}/{file}", line)
            except OSError as exc:
                raise RuntimeFailure(f"cannot apply device rule {line!r} ({file} in {d}): "
                                     f"{exc.strerror}") from None

    # ---- freezing and killing -----------------------------------------------------------
    def _freezer(self) -> tuple[str, str, str]:
        """(file, frozen value, thawed value)."""
        if self.mode == CgroupMode.V2:
            return f"{self._dirs[0]}/cgroup.freeze", "1", "0"
        d = self._dir("freezer")
        if not d:
            raise RuntimeFailure(f"cannot freeze {self.path}: no freezer cgroup hierarchy is "
                                 f"mounted under {self._layout.root}")
        return f"{d}/freezer.state", "FROZEN", "THAWED"

    def _can_freeze(self) -> bool:
        return self.mode == CgroupMode.V2 or bool(self._dir("freezer"))

    def freeze(self) -> None:
        """Freeze every process and return once the kernel reports them frozen."""
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def frozen(self) -> bool:
        if self.mode == CgroupMode.V2:
            return fs.keyed(fs.read(f"{self._dirs[0]}/cgroup.events")).get("frozen") == "1"
        d = self._dir("freezer")
        return bool(d) and fs.read(f"{d}/freezer.state").strip() == "FROZEN"

    def _set_frozen(self, want: bool) -> None:
        file, on, off = self._freezer()
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.0005
        while True:
            try:                    # rewriting retries tasks that slipped (v1 FREEZING)
                fs.write(file, on if want else off)
            except OSError as exc:
                raise RuntimeFailure(f"cannot {'freeze' if want else 'thaw'} cgroup "
                                     f"{self.path} ({file}): {exc.strerror}") from None
            for _ in range(10):
                if self.frozen() == want:
                    return
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
            if time.monotonic() > deadline:
                break
        if want:
            try:
                fs.write(file, off)
            except OSError:
                pass
        raise RuntimeFailure(f"cgroup {self.path} did not {'freeze' if want else 'thaw'} "
                             f"within {FREEZE_TIMEOUT:g}s (a process may be stuck in "
                             "uninterruptible sleep)")

    def kill_all(self, sig: int = signal.SIGKILL, *, timeout: float = 5.0) -> None:
        """Signal every process; for SIGKILL, wait until the cgroup is empty.

        SIGKILL uses ``cgroup.kill`` when there is one (v2, and the unified dir of a
        hybrid host), which also catches processes forking meanwhile.  Otherwise, and
        for other signals, the cgroup is frozen while signalling so nothing can fork
        past the list, then thawed — unless it was already paused and the signal is
        not SIGKILL (a paused container gets the signal when unpaused, as in Docker).
        Other signals are sent without waiting.  RuntimeFailure if processes remain.
        """
        if not self._exists():
            return
        kill_file = f"{self._track_dir()}/cgroup.kill" if self._layout.unified else ""
        if sig == signal.SIGKILL and kill_file and os.path.exists(kill_file):
            try:
                fs.write(kill_file, "1")
            except FileNotFoundError:
                return
            except OSError as exc:
                raise RuntimeFailure(f"cannot kill cgroup {self.path}: {exc.strerror}") \
                    from None
            if self._can_freeze() and self.frozen():
                self.thaw()         # frozen tasks only die once they run again
        else:
            self._signal_frozen(sig)
        if sig != signal.SIGKILL:
            return
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.populated():
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"processes {self.procs()[:8]} of cgroup {self.path} "
                                     f"survived SIGKILL for {timeout:g}s (uninterruptible "
                                     "sleep?)")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
            if delay >= 0.02 and not kill_file:
                self._signal_frozen(sig)

    def _signal_frozen(self, sig: int) -> None:
        freezable = self._can_freeze() and os.path.isdir(os.path.dirname(self._freezer()[0]))
        was_frozen = freezable and self.frozen()
        if freezable and not was_frozen:
            self.freeze()
        try:
            for pid in self.procs():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if freezable and (sig == signal.SIGKILL or not was_frozen):
                self.thaw()

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup."""
        if self.mode == CgroupMode.V2:
            events = fs.keyed(fs.read(f"{self._dirs[0]}/memory.events"))
            return fs.as_int(events.get("oom_kill", "0")) > 0
        d = self._dir("memory")
        control = fs.keyed(fs.read(f"{d}/memory.oom_control")) if d else {}
        return fs.as_int(control.get("oom_kill", "0")) > 0 or \
            control.get("under_oom") == "1"

    def stats(self) -> CgroupStats:
        if self.mode == CgroupMode.V2:
            return stats.read_v2(self._dirs[0])
        return stats.read_v1(lambda ctl: self._dir(ctl) or "/nonexistent")

    # ---- removal ------------------------------------------------------------------------
    def remove(self) -> None:
        """Kill what is left, then rmdir in every hierarchy (sub-cgroups first).

        Idempotent; parents such as "berth" stay.  RuntimeFailure if a directory
        cannot be removed (a process that does not die).
        """
        if not self._exists():
            return
        if self.populated():
            self.kill_all(signal.SIGKILL)
        for d in self._dirs:
            for dirpath, _dirs, _files in os.walk(d, topdown=False):
                _rmdir(dirpath)


def _rmdir(d: str) -> None:
    """rmdir, retrying while exiting tasks still pin the cgroup (EBUSY)."""
    deadline = time.monotonic() + RMDIR_TIMEOUT
    delay = 0.001
    while True:
        try:
            fs.remove_dir(d)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                left = fs.read(f"{d}/cgroup.procs").split()
                raise RuntimeFailure(f"cannot remove cgroup {d}: {exc.strerror}"
                                     + (f" (processes {' '.join(left[:8])})" if left else "")) \
                    from None
            for pid in fs.read(f"{d}/cgroup.procs").split():   # one that missed the unified
                try:                                           # dir (a half-done add)
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class _Reader:
    """What the limit planner may ask about a cgroup (``limits.KnobReader``)."""

    def __init__(self, cg: Cgroup) -> None:
        self._cg = cg

    def has(self, controller: str, file: str) -> bool:
        d = self._cg._dir(controller)
        return bool(d) and os.path.exists(f"{d}/{file}")

    def read(self, controller: str, file: str) -> str:
        d = self._cg._dir(controller)
        return fs.read(f"{d}/{file}") if d else ""

    def read_parent(self, controller: str, file: str) -> str:
        d = self._cg._dir(controller)
        return fs.read(f"{os.path.dirname(d)}/{file}") if d else ""


def cleanup_stale(parent: str, keep: Container[str], *, root: str = ROOT,
                  only: Container[str] | None = None) -> list[str]:
    """Remove the child cgroups of ``parent`` whose names are not in ``keep``.

    For crash repair: any hierarchy counts, processes left inside are killed.  With
    ``only``, names outside it are left alone: several engines (data roots) share the
    parent, and one must never touch another's containers.  Returns the removed
    names; one that cannot be removed is skipped (and retried next time).
    """
    parent = _clean_path(parent)
    names: set[str] = set()
    for hierarchy in fs.discover(root).hierarchies():
        try:
            with os.scandir(f"{hierarchy}/{parent}") as it:
                names |= {e.name for e in it if e.is_dir(follow_symlinks=False)}
        except (FileNotFoundError, NotADirectoryError):
            continue
    removed = []
    for name in sorted(names):
        if name in keep or (only is not None and name not in only):
            continue
        try:
            Cgroup(f"{parent}/{name}", root=root).remove()
        except SdkError:
            continue
        removed.append(name)
    return removed
