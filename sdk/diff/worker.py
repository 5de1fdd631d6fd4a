"""Unpack a layer in a child process, so several layers unpack on several cores.

Unpacking is mostly Python between system calls (tar headers, one ``open``/``write``/
``futimens``/``close`` per file) plus inflating and hashing; in threads of one process
the GIL lets only one layer make progress at a time.  ``apply_in_worker`` runs
``apply_layer`` in a fresh interpreter (``python -m sdk.diff.worker``) that reads the
layer from its stdin and answers one JSON line on its stdout.  ``pull`` uses it only
where cores are idle (see ``sdk.distribution.pull``); everything else unpacks in-process.

A fresh interpreter rather than ``fork``: the pulling process has download threads
running, and a fork of a multi-threaded process may inherit a lock held by another
thread.  The child costs ~90 ms to start, which overlaps the first bytes' download.

The child never outlives its parent's interest: it asks the kernel for SIGKILL when the
thread that started it goes away (``PR_SET_PDEATHSIG``), and the parent kills and reaps
it before anyone removes the directory it was writing into.  What the child reports is
re-raised in the parent with the same type: ``SdkError`` kinds by name, ``OSError``
with its errno, anything else as ``RuntimeFailure``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sdk import errors

if TYPE_CHECKING:
    from sdk.diff.apply import ApplyResult, Whiteouts

#: compressed size from which a layer may unpack in a child process: below it the
#: child's start (~70 ms) costs more than the parallelism gains
MIN_BYTES = 4 << 20
#: child processes unpacking at once
MAX_AT_ONCE = 4
_PUMP_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031
_PR_SET_PDEATHSIG = 1
#: where ``sdk`` is importable from (the child may run with another cwd)
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def worker_layers(sizes: list[int], cpus: int) -> tuple[bool, ...]:
    """Which layers (by blob size) to unpack in child processes: the big ones, when
    there are two or more of them and more than one CPU.  One big layer gains nothing
    (the pipe and the start cost more than they save: 0.97-1.06 s in a child against
    0.81-0.93 s in a thread for 120 MB, docs/benchmarks.md); several unpack at once on
    every core instead of taking turns on the GIL, and under load processes get their
    fair share of the CPU where threads share one."""
    big = tuple(size >= MIN_BYTES for size in sizes)
    return big if cpus > 1 and sum(big) >= 2 else (False,) * len(sizes)


class WorkerFailed(errors.RuntimeFailure):
    """The worker died without an answer (killed, crashed)."""


def apply_in_worker(stream: BinaryIO, target: Path, *, whiteouts: Whiteouts,
                    allow_devices: bool = True, fresh: bool = False) -> ApplyResult:
    """``apply_layer(stream, target, ...)`` in a child process; same result, same errors.

    ``stream`` is copied into the child's stdin from this thread (a file with a real
    descriptor is handed over as is).  Any exception here, e.g. the stream's own
    ``Cancelled``, kills and reaps the child before it propagates: ``target`` is
    written by nobody once this returns or raises.
    """
    import subprocess

    from sdk.diff.apply import ApplyResult

    fd = _real_fileno(stream)
    argv = [sys.executable, "-m", "sdk.diff.worker", "--parent", str(os.getpid()),
            "--whiteouts", whiteouts]
    if not allow_devices:
        argv.append("--no-devices")
    if fresh:
        argv.append("--fresh")
    argv.append(str(target))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH"))
                                        if p)
    proc = subprocess.Popen(argv, stdin=fd if fd is not None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            close_fds=True)
    try:
        if proc.stdin is not None:
            _pump(stream, proc.stdin)
            proc.stdin.close()      # end of the stream for the child
        assert proc.stdout is not None
        answer = proc.stdout.read()
        code = proc.wait()
    except BaseException:
        _kill(proc)
        raise
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    reply = _parse(answer, code)
    if "error" in reply:
        raise _rebuild(reply["error"])
    ok = reply["ok"]
    return ApplyResult(str(ok["diff_id"]), int(ok["size"]), int(ok["content_size"]))


def _real_fileno(stream: BinaryIO) -> int | None:
    """A descriptor the child can read ``stream`` from directly, else None (pumped).

    An unbuffered file (pipe or regular) qualifies as is; a buffered seekable file once
    its read-ahead is dropped, so the descriptor's offset is the stream's position.
    """
    try:
        fd = stream.fileno()
    except (OSError, AttributeError, ValueError):
        return None
    if isinstance(stream, io.FileIO):
        return fd
    try:
        if stream.seekable():
            stream.seek(stream.tell())
            return fd
    except (OSError, ValueError):
        pass
    return None


def _pump(stream: BinaryIO, stdin: Any) -> None:
    """Copy ``stream`` into the child's stdin; stops quietly if the child stopped
    reading (a bad entry: its answer says why)."""
    wfd = stdin.fileno()
    with contextlib.suppress(OSError):
        import fcntl

        fcntl.fcntl(wfd, _F_SETPIPE_SZ, _PUMP_CHUNK)
    buf = bytearray(_PUMP_CHUNK)
    view = memoryview(buf)
    try:
        while n := stream.readinto(view):  # type: ignore[attr-defined]
            data = view[:n]
            while data:
                data = data[os.write(wfd, data):]
    except BrokenPipeError:
        return


def _kill(proc: Any) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait()


def _parse(answer: bytes, code: int) -> dict[str, Any]:
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not ("ok" in reply or "error" in reply):
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise WorkerFailed(f"the layer unpacking process {how} without an answer")
    return reply


def _rebuild(err: dict[str, Any]) -> BaseException:
    kind = str(err.get("type", ""))
    message = str(err.get("message", ""))
    if kind == "OSError":
        return OSError(int(err.get("errno") or 0), message, err.get("filename"))
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.SdkError) and \
            cls is not errors.ContainerError:
        return cls(message)
    return errors.RuntimeFailure(f"unpacking a layer failed: {kind}: {message}")


# ---- the child -------------------------------------------------------------------------
def _describe(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, errors.SdkError):
        return {"type": type(exc).__name__, "message": exc.message}
    if isinstance(exc, OSError) and exc.errno:
        return {"type": "OSError", "errno": exc.errno, "message": exc.strerror or str(exc),
                "filename": exc.filename if isinstance(exc.filename, str) else None}
    return {"type": type(exc).__name__, "message": str(exc)}


def _die_with_parent(parent: int) -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:      # the parent was gone before prctl took effect
        os._exit(1)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sdk.diff.worker")
    ap.add_argument("--parent", type=int, required=True)
    ap.add_argument("--whiteouts", choices=("overlay", "delete"), required=True)
    ap.add_argument("--no-devices", action="store_true")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("target")
    args = ap.parse_args(argv)
    _die_with_parent(args.parent)
    from sdk.diff.apply import apply_layer

    stdin = os.fdopen(0, "rb", buffering=0, closefd=False)
    try:
        result = apply_layer(stdin, Path(args.target), whiteouts=args.whiteouts,
                             allow_devices=not args.no_devices, fresh=args.fresh,
                             prefetch=False)
        reply: dict[str, Any] = {"ok": {"diff_id": result.diff_id, "size": result.size,
                                        "content_size": result.content_size}}
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent
        reply = {"error": _describe(exc)}
    os.write(1, json.dumps(reply).encode() + b"\n")
    return 0 if "ok" in reply else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
