"""Cgroup on fake v1/hybrid and v2 trees: Docker's conversions, ordering, rollback.

``FakeKernel`` stands in for cgroupfs behind the three seams of ``cgroups_fs``
(make_dir, write, remove_dir): a new directory gets the control files the kernel would
give it, and writes are checked the way the kernel checks them where the code's
ordering matters (memsw >= memory on v1, cpuset subsets, subtree_control delegation).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk.errors import Conflict, FailedPrecondition, InvalidArgument, RuntimeFailure
from sdk.runtime import cgroups_devices, cgroups_fs
from sdk.runtime.cgroups import Cgroup, CgroupMode, cleanup_stale, detect_mode
from sdk.runtime.cgroups_limits import blkio_to_io_weight, shares_to_weight
from sdk.runtime.defaults import DEFAULT_DEVICE_RULES
from sdk.runtime.spec import DeviceRule, Resources, ThrottleDevice

MiB = 1024 * 1024
UNLIMITED = "9223372036854771712"
V1_FILES: dict[str, dict[str, str]] = {
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"},
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.stat": "user 0\nsystem 0\n"},
    "cpuset": {"cpuset.cpus": "0-3", "cpuset.mems": "0"},
    "memory": {"memory.limit_in_bytes": UNLIMITED, "memory.memsw.limit_in_bytes": UNLIMITED,
               "memory.soft_limit_in_bytes": UNLIMITED, "memory.usage_in_bytes": "0",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.stat": "cache 0\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {},
    "blkio": {"blkio.weight": "500", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "systemd": {},
}
V2_FILES: dict[str, dict[str, str]] = {
    "memory": {"memory.max": "max", "memory.swap.max": "max", "memory.low": "0",
               "memory.current": "0", "memory.stat": "file 0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"},
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "io": {"io.max": "", "io.weight": "default 100", "io.stat": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
}
V2_CORE = {"cgroup.procs": "", "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0",
           "cgroup.kill": "", "cgroup.subtree_control": "",
           "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"}
APPENDING = {"devices.allow", "devices.deny", "io.max", "blkio.throttle.read_bps_device",
             "blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device",
             "blkio.throttle.write_iops_device"}


class FakeKernel:
    """A cgroupfs look-alike on a tmp tree."""

    def __init__(self, root: Path, mode: CgroupMode, *, missing: frozenset[str] = frozenset(),
                 cpus: str = "0-3") -> None:
        self.root = root
        self.mode = mode
        self.missing = missing                     # control files this "kernel" lacks
        self.writes: list[tuple[str, str]] = []    # (path relative to root, value)
        self.reject: dict[str, int] = {}           # file name -> errno its writes fail with
        if mode == CgroupMode.V2:
            self._files(root, {"cgroup.controllers": "cpuset cpu io memory pids\n",
                               "cgroup.subtree_control": "", "cgroup.procs": "1\n",
                               "cpuset.cpus.effective": cpus, "cpuset.mems.effective": "0"})
            return
        for name, files in V1_FILES.items():
            (root / name).mkdir()
            extra = {"cpuset.cpus": cpus} if name == "cpuset" else {}
            self._files(root / name, {**files, **extra, "cgroup.procs": ""})
        if mode == CgroupMode.HYBRID:
            (root / "unified").mkdir()
            self._files(root / "unified", {"cgroup.controllers": "", "cgroup.procs": "1\n",
                                           "cgroup.subtree_control": ""})

    def _files(self, d: Path, files: dict[str, str]) -> None:
        for name, value in files.items():
            if name not in self.missing:
                (d / name).write_text(value)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
        monkeypatch.setattr(cgroups_fs, "make_dir", self.make_dir)
        monkeypatch.setattr(cgroups_fs, "write", self.write)
        monkeypatch.setattr(cgroups_fs, "remove_dir", self.remove_dir)
        return self

    # ---- the seams ---------------------------------------------------------------------
    def make_dir(self, path: str) -> None:
        d = Path(path)
        d.mkdir()                                  # FileExistsError like the kernel
        parent = d.parent
        if (parent / "cgroup.controllers").exists():           # a cgroup2 directory
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            files = dict(V2_CORE, **{"cgroup.controllers": " ".join(enabled)})
            for ctl in enabled:
                files.update(V2_FILES.get(ctl, {}))
            if "cpuset" in enabled:
                for knob in ("cpuset.cpus.effective", "cpuset.mems.effective"):
                    files[knob] = (parent / knob).read_text()
            self._files(d, files)
            return
        hierarchy = d.relative_to(self.root).parts[0]
        files = {n: (parent / n).read_text() for n in V1_FILES[hierarchy] if
                 (parent / n).exists()}
        files["cgroup.procs"] = ""
        if hierarchy == "cpuset":
            files.update({"cpuset.cpus": "", "cpuset.mems": ""})   # v1: empty until set
        if hierarchy == "freezer":
            files["freezer.state"] = "THAWED"
        self._files(d, files)

    def remove_dir(self, path: str) -> None:
        d = Path(path)
        if not d.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if any(p.is_dir() for p in d.iterdir()) or (d / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for p in d.iterdir():
            p.unlink()
        d.rmdir()

    def write(self, path: str, value: str) -> None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if p.name in self.reject:
            raise OSError(self.reject[p.name], os.strerror(self.reject[p.name]), path)
        self.writes.append((str(p.relative_to(self.root)), value))
        handler = getattr(self, "_w_" + p.name.replace(".", "_"), None)
        if handler is not None:
            handler(p, value)
        elif p.name in APPENDING:
            p.write_text(p.read_text() + value + "\n")
        else:
            p.write_text(value)

    # ---- kernel checks where ordering matters ------------------------------------------
    @staticmethod
    def _num(text: str) -> int:
        return 2**63 if text.strip() in ("-1", UNLIMITED) else int(text)

    def _w_memory_limit_in_bytes(self, p: Path, value: str) -> None:
        if self._num(value) > self._num((p.parent / "memory.memsw.limit_in_bytes").read_text()
                                        if (p.parent / "memory.memsw.limit_in_bytes").exists()
                                        else "-1"):
            raise OSError(errno.EINVAL, "Invalid argument", str(p))
        p.write_text(value)

    def _w_memory_memsw_limit_in_bytes(self, p: Path, value: str) -> None:
        if self._num(value) < self._num((p.parent / "memory.limit_in_bytes").read_text()):
            raise OSError(errno.EINVAL, "Invalid argument", str(p))
        p.write_text(value)

    def _w_cpuset_cpus(self, p: Path, value: str) -> None:
        from sdk.runtime.cgroups_limits import parse_cpu_list

        v2 = (p.parent / "cgroup.controllers").exists()      # v2: "" means inherit
        parent = p.parent.parent / ("cpuset.cpus.effective" if v2 else "cpuset.cpus")
        if parent.exists() and not parse_cpu_list(value) <= parse_cpu_list(parent.read_text()):
            raise OSError(errno.EINVAL, "Invalid argument", str(p))
        p.write_text(value)

    def _w_cgroup_subtree_control(self, p: Path, value: str) -> None:
        enabled = p.read_text().split()
        for item in value.split():
            ctl = item[1:]
            if ctl not in (p.parent / "cgroup.controllers").read_text().split():
                raise OSError(errno.ENOENT, "No such file or directory", str(p))
            if p.parent != self.root and (p.parent / "cgroup.procs").read_text().strip():
                raise OSError(errno.EBUSY, "Device or resource busy", str(p))
            if item[0] == "+" and ctl not in enabled:
                enabled.append(ctl)
        p.write_text(" ".join(enabled))

    def _w_cgroup_procs(self, p: Path, value: str) -> None:
        p.write_text(p.read_text() + value + "\n")
        self._set_event(p.parent, "populated", "1")

    def _w_cgroup_kill(self, p: Path, value: str) -> None:
        (p.parent / "cgroup.procs").write_text("")
        self._set_event(p.parent, "populated", "0")

    def _w_cgroup_freeze(self, p: Path, value: str) -> None:
        p.write_text(value)
        self._set_event(p.parent, "frozen", value)

    @staticmethod
    def _set_event(d: Path, key: str, value: str) -> None:
        events = d / "cgroup.events"
        if events.exists():
            kv = dict(line.split() for line in events.read_text().splitlines())
            kv[key] = value
            events.write_text("".join(f"{k} {v}\n" for k, v in kv.items()))

    # ---- reading back ------------------------------------------------------------------
    def read(self, rel: str) -> str:
        return (self.root / rel).read_text().strip()

    def dirs(self, rel: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(f"*/{rel}")
                      if p.is_dir()) + (["."] if (self.root / rel).is_dir() else [])


@pytest.fixture(autouse=True)
def _fresh_layouts() -> Iterator[None]:
    cgroups_fs.discover.cache_clear()
    yield
    cgroups_fs.discover.cache_clear()


def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: CgroupMode, *,
           missing: frozenset[str] = frozenset(), cpus: str = "0-3") -> FakeKernel:
    root = tmp_path / "cg"
    root.mkdir()
    return FakeKernel(root, mode, missing=missing, cpus=cpus).install(monkeypatch)


@pytest.fixture
def v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    return kernel(tmp_path, monkeypatch, CgroupMode.HYBRID)


@pytest.fixture
def v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    return kernel(tmp_path, monkeypatch, CgroupMode.V2)


NO_LIMITS = Resources()


def create(k: FakeKernel, r: Resources = NO_LIMITS, rules: tuple[DeviceRule, ...] = (),
           path: str = "berth/c1") -> Cgroup:
    return Cgroup.create(path, r, rules, root=str(k.root))


# ---- conversions ---------------------------------------------------------------------------

@pytest.mark.parametrize(("shares", "weight"), [
    (0, 0), (1, 1), (2, 1), (3, 2), (512, 59), (1024, 100), (2048, 174), (262143, 10000),
    (262144, 10000), (10**6, 10000)])
def test_cpu_shares_to_weight_is_the_log_quadratic_fit(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize(("blkio", "io"), [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert blkio_to_io_weight(blkio) == io


# ---- layout --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", list(CgroupMode))
def test_detect_mode_on_fake_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   mode: CgroupMode) -> None:
    k = kernel(tmp_path, monkeypatch, mode)
    assert detect_mode(str(k.root)) == mode


def test_detect_mode_without_cgroups_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="no cgroup filesystem"):
        detect_mode(str(tmp_path))


def test_layout_maps_systemd_hierarchy(v1: FakeKernel) -> None:
    layout = cgroups_fs.discover(str(v1.root))
    assert layout.v1["name=systemd"] == str(v1.root / "systemd")
    assert layout.unified == str(v1.root / "unified")


@pytest.mark.parametrize("path", ["", "/", "berth/../x", "berth//c", "./c"])
def test_bad_paths_are_rejected(v1: FakeKernel, path: str) -> None:
    with pytest.raises(InvalidArgument, match="cgroup path"):
        Cgroup.open(path, root=str(v1.root))


# ---- v1 / hybrid ---------------------------------------------------------------------------

def test_v1_create_writes_dockers_values(v1: FakeKernel) -> None:
    r = Resources(memory=64 * MiB, memory_reservation=32 * MiB, nano_cpus=1_500_000_000,
                  cpu_shares=512, cpuset_cpus="1-2", pids_limit=20, blkio_weight=300,
                  device_read_bps=(ThrottleDevice(8, 0, MiB),),
                  device_write_iops=(ThrottleDevice(8, 16, 100),), oom_kill_disable=True)
    cg = create(v1, r)
    assert cg.mode == CgroupMode.HYBRID and cg.path == "berth/c1"
    assert v1.dirs("berth/c1") == ["blkio/berth/c1", "cpu/berth/c1", "cpuacct/berth/c1",
                                   "cpuset/berth/c1", "devices/berth/c1", "freezer/berth/c1",
                                   "memory/berth/c1", "pids/berth/c1", "systemd/berth/c1",
                                   "unified/berth/c1"]
    assert v1.read("memory/berth/c1/memory.limit_in_bytes") == str(64 * MiB)
    assert v1.read("memory/berth/c1/memory.memsw.limit_in_bytes") == str(128 * MiB)  # 2x
    assert v1.read("memory/berth/c1/memory.soft_limit_in_bytes") == str(32 * MiB)
    assert v1.read("memory/berth/c1/memory.oom_control") == "1"
    assert v1.read("cpu/berth/c1/cpu.cfs_period_us") == "100000"
    assert v1.read("cpu/berth/c1/cpu.cfs_quota_us") == "150000"
    assert v1.read("cpu/berth/c1/cpu.shares") == "512"
    assert v1.read("cpuset/berth/c1/cpuset.cpus") == "1-2"
    assert v1.read("pids/berth/c1/pids.max") == "20"
    assert v1.read("blkio/berth/c1/blkio.weight") == "300"
    assert v1.read("blkio/berth/c1/blkio.throttle.read_bps_device") == "8:0 1048576"
    assert v1.read("blkio/berth/c1/blkio.throttle.write_iops_device") == "8:16 100"


def test_v1_cpuset_dirs_are_seeded_from_the_parent(v1: FakeKernel) -> None:
    create(v1, Resources(cpuset_cpus="3"), path="berth/sub/c1")
    for d in ("berth", "berth/sub"):
        assert v1.read(f"cpuset/{d}/cpuset.cpus") == "0-3"
        assert v1.read(f"cpuset/{d}/cpuset.mems") == "0"
    assert v1.read("cpuset/berth/sub/c1/cpuset.cpus") == "3"
    assert v1.read("cpuset/berth/sub/c1/cpuset.mems") == "0"


def test_v1_unavailable_cpuset_names_what_exists_and_leaves_nothing(v1: FakeKernel) -> None:
    with pytest.raises(InvalidArgument) as err:
        create(v1, Resources(cpuset_cpus="5"))
    assert "--cpuset-cpus" in str(err.value) and "available: 0-3" in str(err.value)
    assert v1.dirs("berth") == []


def test_v1_swap_minus_one_is_unlimited_and_written_before_memory(v1: FakeKernel) -> None:
    create(v1, Resources(memory=64 * MiB, memory_swap=-1))
    mem = [(f, v) for f, v in v1.writes if f.startswith("memory/berth/c1/memory.")]
    assert mem == [("memory/berth/c1/memory.memsw.limit_in_bytes", "-1"),
                   ("memory/berth/c1/memory.limit_in_bytes", str(64 * MiB))]


def test_v1_update_orders_memory_and_memsw_for_the_kernel(v1: FakeKernel) -> None:
    cg = create(v1, Resources(memory=64 * MiB))                 # memsw 128m
    cg.update(Resources(memory=256 * MiB, memory_swap=512 * MiB))   # grow: memsw first
    assert v1.read("memory/berth/c1/memory.limit_in_bytes") == str(256 * MiB)
    assert v1.read("memory/berth/c1/memory.memsw.limit_in_bytes") == str(512 * MiB)
    cg.update(Resources(memory=32 * MiB, memory_swap=48 * MiB))     # shrink: memory first
    assert v1.read("memory/berth/c1/memory.limit_in_bytes") == str(32 * MiB)
    assert v1.read("memory/berth/c1/memory.memsw.limit_in_bytes") == str(48 * MiB)


def test_v1_update_memory_above_memsw_asks_for_memory_swap(v1: FakeKernel) -> None:
    cg = create(v1, Resources(memory=64 * MiB))
    with pytest.raises(InvalidArgument, match="update the memoryswap at the same time"):
        cg.update(Resources(memory=256 * MiB))
    cg.update(Resources(memory=100 * MiB))                      # below 128m memsw: fine
    assert v1.read("memory/berth/c1/memory.limit_in_bytes") == str(100 * MiB)


def test_v1_update_only_touches_given_fields(v1: FakeKernel) -> None:
    cg = create(v1, Resources(memory=64 * MiB, pids_limit=20, cpu_shares=512))
    cg.update(Resources(pids_limit=-1))
    assert v1.read("pids/berth/c1/pids.max") == "max"
    assert v1.read("cpu/berth/c1/cpu.shares") == "512"
    assert v1.read("memory/berth/c1/memory.limit_in_bytes") == str(64 * MiB)


def test_v1_without_swap_accounting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(tmp_path, monkeypatch, CgroupMode.HYBRID,
               missing=frozenset({"memory.memsw.limit_in_bytes"}))
    create(k, Resources(memory=64 * MiB), path="berth/ok")         # default: no error
    create(k, Resources(memory=64 * MiB, memory_swap=-1), path="berth/ok2")
    assert k.read("memory/berth/ok/memory.limit_in_bytes") == str(64 * MiB)
    with pytest.raises(InvalidArgument, match="--memory-swap.*does not account swap"):
        create(k, Resources(memory=64 * MiB, memory_swap=128 * MiB), path="berth/bad")
    assert k.dirs("berth/bad") == []


@pytest.mark.parametrize(("resources", "flag", "text"), [
    (Resources(memory=4 * MiB), "--memory", "Minimum memory limit allowed is 6MB"),
    (Resources(memory=64 * MiB, memory_swap=32 * MiB), "--memory-swap", "larger than memory"),
    (Resources(memory_swap=32 * MiB), "--memory-swap", "always set the Memory limit"),
    (Resources(memory_reservation=1 * MiB), "--memory-reservation", "6MB"),
    (Resources(memory=64 * MiB, memory_reservation=128 * MiB), "--memory-reservation",
     "can not be less than memory reservation"),
    (Resources(nano_cpus=1000 * 10**9), "--cpus", "Range of CPUs is from 0.01 to"),
    (Resources(nano_cpus=10**9, cpu_period=50000), "--cpus", "cannot both be set"),
    (Resources(cpu_period=500), "--cpu-period", "can not be less than 1ms"),
    (Resources(cpu_quota=999), "--cpu-quota", "can not be less than 1ms"),
    (Resources(cpu_shares=-5), "--cpu-shares", "positive"),
    (Resources(blkio_weight=5), "--blkio-weight", "from 10 to 1000"),
    (Resources(cpuset_cpus="1-x"), "--cpuset-cpus", "Invalid value 1-x for cpuset cpus"),
    (Resources(cpuset_mems="0,"), "--cpuset-mems", "Invalid value"),
])
@pytest.mark.parametrize("mode", [CgroupMode.HYBRID, CgroupMode.V2])
def test_bad_values_name_the_flag_and_leave_no_dirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: CgroupMode,
        resources: Resources, flag: str, text: str) -> None:
    k = kernel(tmp_path, monkeypatch, mode)
    with pytest.raises(InvalidArgument) as err:
        create(k, resources)
    assert flag in str(err.value) and text in str(err.value)
    assert k.dirs("berth") == []


@pytest.mark.parametrize(("err", "kind"), [(errno.EINVAL, InvalidArgument),
                                           (errno.EBUSY, RuntimeFailure)])
def test_kernel_refusal_names_knob_and_value_and_rolls_back(
        v1: FakeKernel, err: int, kind: type[Exception]) -> None:
    v1.reject["pids.max"] = err
    with pytest.raises(kind) as exc:
        create(v1, Resources(memory=64 * MiB, pids_limit=20))
    msg = str(exc.value)
    assert "--pids-limit" in msg and "pids.max" in msg and "'20'" in msg
    assert v1.dirs("berth") == []


def test_v1_blkio_weight_uses_bfq_or_says_it_cannot(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(tmp_path, monkeypatch, CgroupMode.V1, missing=frozenset({"blkio.weight"}))
    with pytest.raises(InvalidArgument, match="--blkio-weight 300.*BFQ"):
        create(k, Resources(blkio_weight=300))
    assert k.dirs("berth") == []
    (k.root / "blkio" / "blkio.bfq.weight").write_text("100")
    monkeypatch.setitem(V1_FILES, "blkio", {**V1_FILES["blkio"], "blkio.bfq.weight": "100"})
    create(k, Resources(blkio_weight=300))
    assert k.read("blkio/berth/c1/blkio.bfq.weight") == "300"


def test_v1_device_rules_deny_all_then_apply_in_order(v1: FakeKernel) -> None:
    create(v1, rules=tuple(DEFAULT_DEVICE_RULES))
    writes = [(f.rsplit("/", 1)[1], v) for f, v in v1.writes if f.startswith("devices/")]
    assert writes[0] == ("devices.deny", "a")
    assert ("devices.allow", "c 1:3 rwm") in writes
    assert ("devices.allow", "c 136:* rwm") in writes
    assert writes[-1] == ("devices.deny", "c 10:229 rwm")
    assert len(writes) == len(DEFAULT_DEVICE_RULES) + 1


def test_invalid_device_rule(v1: FakeKernel) -> None:
    with pytest.raises(InvalidArgument, match="access"):
        create(v1, rules=(DeviceRule(True, "c", 1, 3, "rx"),))
    assert v1.dirs("berth") == []


def test_v1_add_procs_kill_and_remove(v1: FakeKernel) -> None:
    cg = create(v1)
    cg.add(4242)
    assert all("4242" in v1.read(f"{d}/cgroup.procs") for d in v1.dirs("berth/c1"))
    assert cg.procs() == [4242] and cg.populated()
    cg.kill_all()
    assert ("unified/berth/c1/cgroup.kill", "1") in v1.writes
    assert not cg.populated()
    for d in v1.dirs("berth/c1"):                 # the fake's v1 dirs still list the pid
        (v1.root / d / "cgroup.procs").write_text("")
    cg.remove()
    assert v1.dirs("berth/c1") == []
    assert len(v1.dirs("berth")) == 10            # parents stay
    cg.remove()                                   # idempotent


def test_v1_freeze_and_thaw(v1: FakeKernel) -> None:
    cg = create(v1)
    cg.freeze()
    assert v1.read("freezer/berth/c1/freezer.state") == "FROZEN" and cg.frozen()
    cg.thaw()
    assert v1.read("freezer/berth/c1/freezer.state") == "THAWED" and not cg.frozen()


def test_v1_oom_killed(v1: FakeKernel) -> None:
    cg = create(v1, Resources(memory=16 * MiB))
    assert not cg.oom_killed()
    (v1.root / "memory/berth/c1/memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.oom_killed()


def test_v1_stats(v1: FakeKernel) -> None:
    cg = create(v1, Resources(pids_limit=20))
    d = v1.root
    (d / "cpuacct/berth/c1/cpuacct.usage").write_text("123456789\n")
    (d / "cpuacct/berth/c1/cpuacct.stat").write_text("user 10\nsystem 5\n")
    (d / "memory/berth/c1/memory.usage_in_bytes").write_text(str(5 * MiB))
    (d / "memory/berth/c1/memory.stat").write_text("cache 4096\ntotal_cache 8192\n")
    (d / "pids/berth/c1/pids.current").write_text("3\n")
    (d / "blkio/berth/c1/blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 100\n8:0 Write 200\n8:0 Total 300\n8:16 Read 1\nTotal 301\n")
    s = cg.stats()
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert (s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns) == (123456789, 10 * tick, 5 * tick)
    assert s.memory_usage == 5 * MiB and s.memory_cache == 8192
    assert 0 < s.memory_limit < int(UNLIMITED)      # unlimited -> host RAM
    assert (s.pids_current, s.pids_limit) == (3, 20)
    assert (s.blkio_read_bytes, s.blkio_write_bytes) == (101, 200)
    assert s.online_cpus >= 1


def test_create_replaces_an_empty_leftover_but_not_a_busy_one(v1: FakeKernel) -> None:
    create(v1, Resources(pids_limit=5))
    cg = create(v1, Resources(pids_limit=7))
    assert v1.read("pids/berth/c1/pids.max") == "7"
    cg.add(99)
    with pytest.raises(Conflict, match="has processes"):
        create(v1)


def test_cleanup_stale_removes_unknown_children(v1: FakeKernel) -> None:
    for name in ("a", "b", "c"):
        create(v1, path=f"berth/{name}")
    assert cleanup_stale("berth", {"b"}, root=str(v1.root)) == ["a", "c"]
    assert v1.dirs("berth/a") == v1.dirs("berth/c") == []
    assert len(v1.dirs("berth/b")) == 10
    assert cleanup_stale("nothing-here", (), root=str(v1.root)) == []


def test_cleanup_stale_leaves_other_engines_containers(v1: FakeKernel) -> None:
    for name in ("mine-dead", "mine-alive", "other-engines"):
        create(v1, path=f"berth/{name}")
    removed = cleanup_stale("berth", {"mine-alive"}, root=str(v1.root),
                            only={"mine-dead", "mine-alive"})
    assert removed == ["mine-dead"]
    assert len(v1.dirs("berth/other-engines")) == 10


def test_pure_v1_kill_falls_back_to_freeze_kill_thaw(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(tmp_path, monkeypatch, CgroupMode.V1)
    cg = create(k)
    assert cg.mode == CgroupMode.V1
    sent: list[tuple[int, int]] = []

    def fake_kill(pid: int, sig: int) -> None:
        sent.append((pid, sig))
        for d in k.dirs("berth/c1"):
            (k.root / d / "cgroup.procs").write_text("")

    monkeypatch.setattr(os, "kill", fake_kill)
    cg.add(777)
    cg.kill_all()
    assert sent == [(777, 9)]
    states = [v for f, v in k.writes if f.endswith("freezer.state")]
    assert states == ["FROZEN", "THAWED"]
    assert not cg.populated()


# ---- v2 ------------------------------------------------------------------------------------

def test_v2_create_writes_dockers_values(v2: FakeKernel) -> None:
    r = Resources(memory=64 * MiB, memory_reservation=32 * MiB, nano_cpus=1_500_000_000,
                  cpu_shares=1024, cpuset_cpus="0,2", cpuset_mems="0", pids_limit=20,
                  blkio_weight=500, device_read_bps=(ThrottleDevice(8, 0, MiB),),
                  device_write_bps=(ThrottleDevice(8, 0, 2 * MiB),),
                  device_read_iops=(ThrottleDevice(8, 16, 50),))
    cg = create(v2, r)
    assert cg.mode == CgroupMode.V2
    assert v2.read("berth/c1/memory.max") == str(64 * MiB)
    assert v2.read("berth/c1/memory.swap.max") == str(64 * MiB)   # 2x total = as much swap
    assert v2.read("berth/c1/memory.low") == str(32 * MiB)
    assert v2.read("berth/c1/cpu.max") == "150000 100000"
    assert v2.read("berth/c1/cpu.weight") == "100"
    assert v2.read("berth/c1/cpuset.cpus") == "0,2"
    assert v2.read("berth/c1/pids.max") == "20"
    assert v2.read("berth/c1/io.weight") == "4950"
    assert v2.read("berth/c1/io.max").splitlines() == ["8:0 rbps=1048576 wbps=2097152",
                                                       "8:16 riops=50"]


@pytest.mark.parametrize(("resources", "file", "value"), [
    (Resources(cpu_shares=2), "cpu.weight", "1"),
    (Resources(cpu_shares=262144), "cpu.weight", "10000"),
    (Resources(cpu_quota=50000, cpu_period=200000), "cpu.max", "50000 200000"),
    (Resources(cpu_period=200000), "cpu.max", "max 200000"),
    (Resources(cpu_quota=-1), "cpu.max", "max"),
    (Resources(memory=64 * MiB, memory_swap=-1), "memory.swap.max", "max"),
    (Resources(memory=64 * MiB, memory_swap=64 * MiB), "memory.swap.max", "0"),
    (Resources(memory=64 * MiB, memory_swap=100 * MiB), "memory.swap.max", str(36 * MiB)),
    (Resources(pids_limit=-1), "pids.max", "max"),
])
def test_v2_conversions(v2: FakeKernel, resources: Resources, file: str, value: str) -> None:
    create(v2, resources)
    assert v2.read(f"berth/c1/{file}") == value


def test_v2_cpus_is_docker_quota(v2: FakeKernel) -> None:
    create(v2, Resources(nano_cpus=500_000_000))
    assert v2.read("berth/c1/cpu.max") == "50000 100000"


def test_v2_bfq_weight_is_not_converted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(tmp_path, monkeypatch, CgroupMode.V2)
    monkeypatch.setitem(V2_FILES, "io", {**V2_FILES["io"], "io.bfq.weight": "default 100"})
    create(k, Resources(blkio_weight=500))
    assert k.read("berth/c1/io.bfq.weight") == "500"


def test_v2_enables_controllers_in_ancestors(v2: FakeKernel) -> None:
    create(v2, Resources(memory=64 * MiB))
    for d in (".", "berth"):
        assert v2.read(f"{d}/cgroup.subtree_control").split() == \
            ["cpu", "cpuset", "io", "memory", "pids"]
    assert v2.read("berth/c1/cgroup.subtree_control") == ""     # the leaf holds processes


def test_v2_parent_with_processes_is_not_delegated(v2: FakeKernel) -> None:
    create(v2, path="busy/c0").add(123)                  # a process sits in busy/c0
    cg = Cgroup.open("busy/c0", root=str(v2.root))
    assert cg.procs() == [123]
    with pytest.raises(InvalidArgument) as err:           # "busy/c0" as a parent: no delegation
        create(v2, Resources(memory=64 * MiB), path="busy/c0/sub")
    assert "--memory" in str(err.value) and "memory controller is not enabled" in str(err.value)
    assert v2.read("busy/c0/cgroup.subtree_control") == ""
    assert v2.dirs("busy/c0/sub") == []


def test_v2_missing_swap_accounting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(tmp_path, monkeypatch, CgroupMode.V2, missing=frozenset({"memory.swap.max"}))
    create(k, Resources(memory=64 * MiB))
    with pytest.raises(InvalidArgument, match="memory.swap.max is missing"):
        create(k, Resources(memory=64 * MiB, memory_swap=100 * MiB), path="berth/c2")


def test_v2_unavailable_cpuset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    k = kernel(tmp_path, monkeypatch, CgroupMode.V2, cpus="0-1")
    with pytest.raises(InvalidArgument, match="requested 0-3, available: 0-1"):
        create(k, Resources(cpuset_cpus="0-3"))
    assert k.dirs("berth") == []


def test_v2_freeze_kill_oom_and_remove(v2: FakeKernel) -> None:
    cg = create(v2, Resources(memory=16 * MiB))
    cg.add(4242)
    assert cg.populated() and cg.procs() == [4242]
    cg.freeze()
    assert v2.read("berth/c1/cgroup.freeze") == "1" and cg.frozen()
    cg.kill_all()
    assert ("berth/c1/cgroup.kill", "1") in v2.writes
    assert not cg.frozen() and not cg.populated()        # thawed so frozen tasks die
    assert not cg.oom_killed()
    (v2.root / "berth/c1/memory.events").write_text("oom 2\noom_kill 1\n")
    assert cg.oom_killed()
    cg.remove()
    assert v2.dirs("berth/c1") == [] and v2.dirs("berth") == ["."]


def test_v2_device_rules_attach_a_bpf_filter(v2: FakeKernel,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, tuple[DeviceRule, ...]]] = []
    monkeypatch.setattr(cgroups_devices, "attach_device_filter",
                        lambda d, rules: calls.append((d, tuple(rules))))
    create(v2, rules=tuple(DEFAULT_DEVICE_RULES))
    assert calls == [(str(v2.root / "berth/c1"), tuple(DEFAULT_DEVICE_RULES))]


def test_v2_stats(v2: FakeKernel) -> None:
    cg = create(v2, Resources(memory=64 * MiB, pids_limit=-1))
    d = v2.root / "berth/c1"
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "memory.current").write_text(str(3 * MiB))
    (d / "memory.stat").write_text("anon 1\nfile 4096\n")
    (d / "pids.current").write_text("2\n")
    (d / "io.stat").write_text("8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=1\n")
    s = cg.stats()
    assert (s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns) == (1_500_000, 1_000_000, 500_000)
    assert (s.memory_usage, s.memory_limit, s.memory_cache) == (3 * MiB, 64 * MiB, 4096)
    assert (s.pids_current, s.pids_limit) == (2, 0)
    assert (s.blkio_read_bytes, s.blkio_write_bytes) == (11, 20)


def test_v2_update(v2: FakeKernel) -> None:
    cg = create(v2, Resources(memory=64 * MiB, nano_cpus=10**9))
    cg.update(Resources(nano_cpus=250_000_000, pids_limit=10))
    assert v2.read("berth/c1/cpu.max") == "25000 100000"
    assert v2.read("berth/c1/pids.max") == "10"
    assert v2.read("berth/c1/memory.max") == str(64 * MiB)
    with pytest.raises(RuntimeFailure, match="does not exist"):
        Cgroup.open("berth/gone", root=str(v2.root)).update(Resources(pids_limit=1))


def test_open_missing_cgroup_reads_as_empty(v2: FakeKernel) -> None:
    cg = Cgroup.open("berth/none", root=str(v2.root))
    assert cg.procs() == [] and not cg.populated() and not cg.oom_killed()
    cg.kill_all()
    cg.remove()
