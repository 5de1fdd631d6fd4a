"""``apply_in_worker``: a layer unpacked in a child process builds exactly the tree the
in-process applier builds, refuses exactly the same malicious tars with the same
errors, and never leaves the child behind: not when the stream fails, not when the
child is killed, not when the parent is killed.  Root: owners, setuid bits and overlay
whiteouts are part of the tree compared."""

from __future__ import annotations

import errno
import gzip
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sdk.diff.apply import apply_layer
from sdk.diff.worker import WorkerFailed, apply_in_worker
from sdk.errors import InvalidArgument
from tests.unit import test_diff_apply as careful
from tests.unit.test_diff_apply import f, make_tar
from tests.unit.test_pull_stage import CORPUS, assert_refused, snapshot

pytestmark = pytest.mark.root


def workers_of(pid: int) -> list[int]:
    """PIDs of live unpack workers started by process ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"sdk.diff.worker" in cmd and str(pid).encode() in cmd and state != "Z":
            out.append(int(entry))
    return out


class Failing(io.RawIOBase):
    """Gives ``data`` then raises ``exc`` (a download that broke, a cancelled pull);
    ``before_fail`` runs first (e.g. to kill the worker)."""

    def __init__(self, data: bytes, exc: BaseException, before_fail=None) -> None:
        self._data = io.BytesIO(data)
        self._exc = exc
        self._before_fail = before_fail

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = self._data.readinto(buf)
        if n:
            return n
        if self._before_fail is not None:
            self._before_fail()
        raise self._exc


@pytest.mark.parametrize("whiteouts", ["overlay", "delete"])
@pytest.mark.parametrize("source", ["pipe", "file"])
def test_the_same_tree_and_result_as_in_process(tmp_path: Path, whiteouts: str,
                                                source: str) -> None:
    data = gzip.compress(make_tar(CORPUS), mtime=0)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    expected = apply_layer(io.BytesIO(data), here, whiteouts=whiteouts,  # type: ignore
                           fresh=True)
    if source == "file":
        (tmp_path / "blob").write_bytes(data)
        with open(tmp_path / "blob", "rb") as stream:
            result = apply_in_worker(stream, there, whiteouts=whiteouts,  # type: ignore
                                     fresh=True)
    else:
        result = apply_in_worker(io.BytesIO(data), there,  # type: ignore[arg-type]
                                 whiteouts=whiteouts, fresh=True)  # type: ignore
    assert result == expected
    a, b = snapshot(here), snapshot(there)
    for path in sorted(set(a) | set(b)):
        assert a.get(path) == b.get(path), path
    assert workers_of(os.getpid()) == []


_MALICIOUS = careful.test_malicious_tars_are_refused.pytestmark[0]


@pytest.mark.parametrize("case", _MALICIOUS.args[1], ids=_MALICIOUS.kwargs["ids"])
def test_the_malicious_corpus_is_refused_with_the_same_error(tmp_path: Path,
                                                            case: tuple) -> None:
    assert_refused(apply_in_worker, tmp_path, case)


def test_corrupt_gzip_and_missing_target_keep_their_error_types(tmp_path: Path) -> None:
    good = gzip.compress(make_tar([f("a", os.urandom(300_000))]), mtime=0)
    corrupt = good[:2000] + bytes(b ^ 0xFF for b in good[2000:2100]) + good[2100:]
    (tmp_path / "t").mkdir()
    with pytest.raises(InvalidArgument, match="corrupt compressed stream"):
        apply_in_worker(io.BytesIO(corrupt), tmp_path / "t",  # type: ignore[arg-type]
                        whiteouts="overlay", fresh=True)
    with pytest.raises(InvalidArgument, match="corrupt compressed stream"):
        apply_in_worker(io.BytesIO(good[:-4000]), tmp_path / "t",  # type: ignore
                        whiteouts="overlay", fresh=False)
    with pytest.raises(OSError) as err:
        apply_in_worker(io.BytesIO(good), tmp_path / "missing",  # type: ignore[arg-type]
                        whiteouts="overlay", fresh=True)
    assert err.value.errno == errno.ENOENT
    assert workers_of(os.getpid()) == []


class _Boom(Exception):
    pass


def test_a_failing_stream_kills_and_reaps_the_child(tmp_path: Path) -> None:
    data = make_tar([f(f"f{i}", os.urandom(100_000)) for i in range(40)])
    seen: list[int] = []

    def look() -> None:
        seen.extend(workers_of(os.getpid()))

    stream = Failing(data[:len(data) // 2], _Boom("download broke"), before_fail=look)
    with pytest.raises(_Boom):
        apply_in_worker(stream, tmp_path, whiteouts="overlay")  # type: ignore[arg-type]
    assert seen, "the child was running while the stream was read"
    assert workers_of(os.getpid()) == []
    for pid in seen:
        assert not os.path.exists(f"/proc/{pid}")


def test_a_killed_child_is_reported_not_mistaken_for_a_layer(tmp_path: Path) -> None:
    data = make_tar([f(f"f{i}", os.urandom(100_000)) for i in range(40)])

    def kill_child() -> None:
        for pid in workers_of(os.getpid()):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)

    class KillThenEnd(Failing):
        def readinto(self, buf) -> int:  # type: ignore[override]
            n = self._data.readinto(buf)
            if n:
                return n
            kill_child()
            return 0

    stream = KillThenEnd(data[:len(data) // 2], _Boom("unused"))
    with pytest.raises(WorkerFailed, match="killed by signal 9"):
        apply_in_worker(stream, tmp_path, whiteouts="overlay")  # type: ignore[arg-type]
    assert workers_of(os.getpid()) == []


def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    """kill -9 of the pulling process: the kernel kills the worker too
    (PR_SET_PDEATHSIG).  The worker reads a pipe whose write end this test holds, so
    nothing but that signal can end it."""
    read_end, write_end = os.pipe()
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from sdk.diff.worker import apply_in_worker

        stream = os.fdopen({read_end}, "rb", buffering=0)
        apply_in_worker(stream, Path({str(tmp_path)!r}), whiteouts="overlay")
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], pass_fds=(read_end,))
    os.close(read_end)
    children: list[int] = []
    try:
        for _ in range(200):
            children = workers_of(parent.pid)
            if children:
                break
            time.sleep(0.05)
        assert children, "the worker started"
        os.write(write_end, make_tar([f("a", b"a")])[:512])   # it is past its prctl
        time.sleep(0.3)
        assert workers_of(parent.pid) == children
    finally:
        parent.kill()
        parent.wait()
    try:
        for _ in range(100):
            if not workers_of(parent.pid):
                break
            time.sleep(0.05)
        assert workers_of(parent.pid) == []
    finally:
        os.close(write_end)         # lets a surviving worker end, whatever happened
