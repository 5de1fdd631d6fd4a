"""Docker's json-file log driver: one JSON record per line, rotation, reading back."""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

MAX_RECORD = 16 * 1024


def format_timestamp(ts: float) -> str:
    whole = int(ts)
    nanos = int(round((ts - whole) * 1e9)) % 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


def _go_json(text: str) -> str:
    """JSON string like Go's encoder: <, >, & escaped as \\u003c, \\u003e, \\u0026."""
    return json.dumps(text, ensure_ascii=False).replace("<", "\\u003c") \
        .replace(">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028") \
        .replace("\u2029", "\\u2029")


class JsonFileWriter:
    def __init__(self, path: str | os.PathLike[str], *, max_size: int = 0, max_file: int = 1,
                 compress: bool = False) -> None:
        self.path = Path(path)
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.compress = compress
        self.pending: dict[str, bytes] = {}
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.file = os.fdopen(fd, "ab", buffering=0)
        self.size = os.fstat(fd).st_size

    def _record(self, stream: str, data: bytes, when: float) -> None:
        line = ('{"log":' + _go_json(data.decode("utf-8", "replace")) +
                f',"stream":"{stream}","time":"{format_timestamp(when)}"}}\n').encode()
        if self.max_size and self.size + len(line) > self.max_size and self.size > 0:
            self._rotate()
        self.file.write(line)
        self.size += len(line)

    def _rotate(self) -> None:
        self.file.close()
        suffix = ".gz" if self.compress else ""
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                src = Path(f"{self.path}.{i - 1}{suffix}")
                if src.exists():
                    os.replace(src, f"{self.path}.{i}{suffix}")
            if self.compress:
                with open(self.path, "rb") as src_f, gzip.open(f"{self.path}.1.gz", "wb") as g:
                    g.write(src_f.read())
                os.unlink(self.path)
            else:
                os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.file = os.fdopen(fd, "ab", buffering=0)
        self.size = 0

    def write(self, stream: str, data: bytes, when: float | None = None) -> None:
        when = time.time() if when is None else when
        buf = self.pending.pop(stream, b"") + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl + 1], buf[nl + 1:]
            while len(line) > MAX_RECORD:
                self._record(stream, line[:MAX_RECORD], when)
                line = line[MAX_RECORD:]
            self._record(stream, line, when)
        while len(buf) > MAX_RECORD:
            self._record(stream, buf[:MAX_RECORD], when)
            buf = buf[MAX_RECORD:]
        if buf:
            self.pending[stream] = buf

    def flush(self) -> None:
        for stream, buf in list(self.pending.items()):
            if buf:
                self._record(stream, buf, time.time())
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.file.close()


@dataclass(frozen=True, slots=True)
class LogRecord:
    stream: str
    time: str
    ts: float
    data: bytes


def _parse(line: bytes) -> LogRecord | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    stamp = obj.get("time", "")
    try:
        ts = datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        ts = 0.0
    return LogRecord(obj.get("stream", "stdout"), stamp, ts,
                     obj.get("log", "").encode("utf-8", "surrogateescape"))


def _files(path: Path) -> list[Path]:
    rotated = []
    i = 1
    while True:
        plain, gz = Path(f"{path}.{i}"), Path(f"{path}.{i}.gz")
        if plain.exists():
            rotated.append(plain)
        elif gz.exists():
            rotated.append(gz)
        else:
            break
        i += 1
    return list(reversed(rotated)) + ([path] if path.exists() else [])


def _lines(p: Path) -> list[bytes]:
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        return f.read().splitlines()


def _tail_lines(files: list[Path], n: int) -> list[bytes]:
    out: list[bytes] = []
    for p in reversed(files):
        if n <= 0:
            break
        if p.suffix == ".gz":
            lines = _lines(p)
        else:
            lines = _tail_file(p, n)
        out = lines[-n:] + out if n else out
        n -= min(n, len(lines))
    return out


def _tail_file(p: Path, n: int) -> list[bytes]:
    """Last ``n`` lines without reading the whole file."""
    with open(p, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        block = 65536
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
        lines = data.splitlines()
        return lines[-n:] if pos > 0 else lines


def read_logs(path: str | os.PathLike[str], *, since: float | None = None,
              until: float | None = None, tail: int | None = None, follow: bool = False,
              is_running: Callable[[], bool] = lambda: False,
              poll: float = 0.1) -> Iterator[LogRecord]:
    path = Path(path)
    files = _files(path)
    lines = _tail_lines(files, tail) if tail is not None else \
        [ln for p in files for ln in _lines(p)]
    for line in lines:
        rec = _parse(line)
        if rec is None or (since is not None and rec.ts < since) or \
                (until is not None and rec.ts > until):
            continue
        yield rec
    if not follow:
        return
    offset = path.stat().st_size if path.exists() else 0
    inode = path.stat().st_ino if path.exists() else 0
    partial = b""
    while True:
        running = is_running()
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_ino != inode or st.st_size < offset):
            inode, offset = st.st_ino, 0          # rotated
        if st is not None and st.st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            partial += chunk
            *complete, partial = partial.split(b"\n")
            for line in complete:
                rec = _parse(line)
                if rec is not None and (until is None or rec.ts <= until):
                    yield rec
            continue
        if not running:
            return
        time.sleep(poll)
