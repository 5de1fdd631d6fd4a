"""Docker's json-file log driver, byte for byte: writing, rotating and reading back.

Every record is one line, exactly as moby's ``jsonlog.JSONLogs.MarshalJSONBuf`` writes it:

    {"log":"hello\\n","stream":"stdout","time":"2026-11-24T09:41:02.123456789Z"}

Details that matter for byte compatibility (moby ``daemon/logger``):

* strings are escaped by ``ffjsonWriteJSONBytesAsString``: ``\\n`` and ``\\r`` short, every
  other control byte (tab included) as ``\\u00XX``, ``< > &`` as ``\\u003c \\u003e \\u0026``,
  U+2028/U+2029 escaped, and *each* byte that is not valid UTF-8 as ``\\ufffd`` (Go's
  ``utf8.DecodeRune`` consumes one byte per error; Python's "replace" may swallow several);
* ``time`` is Go's ``time.RFC3339Nano``, which trims trailing zeros of the fraction
  ("...02.1234567Z", "...02Z").  ``docker logs -t`` prints the fixed 9-digit form instead,
  which is what :func:`format_timestamp` and :attr:`LogRecord.time` give;
* the copier cuts lines into records of at most 16 KiB: a longer line becomes partial
  records of 16384 bytes without a newline; the last piece keeps the newline;
* rotation happens *before* a write once the file has reached ``max-size`` (so a file may
  overshoot by one record); ``path`` becomes ``path.1`` and older files shift up to
  ``path.<max-file - 1>``; with ``compress`` the rotated file becomes ``path.1.gz`` whose gzip
  header carries ``{"lastTime": ...}`` so readers can skip it for ``--since``.
"""

from __future__ import annotations

import calendar
import codecs
import collections
import gzip
import json
import math
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sdk.errors import InvalidArgument

MAX_RECORD = 16 * 1024          # moby copier's buffer: longest record before it splits
FILE_MODE = 0o640
STREAMS = ("stdout", "stderr")
_BLOCK = 64 * 1024
_NS = 1_000_000_000

# --------------------------------------------------------------------------- time


def rfc3339nano(ns: int, *, fixed: bool = False) -> str:
    """UTC time from epoch nanoseconds, as Go formats it.

    ``fixed=False`` is ``time.RFC3339Nano`` (trailing zeros trimmed, no fraction when it is
    zero): what json-file stores.  ``fixed=True`` always has 9 digits: what ``-t`` prints.
    """
    secs, nanos = divmod(ns, _NS)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if fixed:
        return f"{stamp}.{nanos:09d}Z"
    frac = f"{nanos:09d}".rstrip("0")
    return f"{stamp}.{frac}Z" if frac else f"{stamp}Z"


def format_timestamp(ts: float) -> str:
    """RFC3339Nano with a fixed 9-digit fraction, in UTC (``docker logs -t``)."""
    return rfc3339nano(_to_ns(ts), fixed=True)


_TIME_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)\Z")


def parse_rfc3339(text: str) -> int:
    """Epoch nanoseconds of an RFC 3339 time with any fraction and offset; ValueError if bad."""
    m = _TIME_RE.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    frac = int((m.group(7) or "").ljust(9, "0"))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return secs * _NS + frac


def _to_ns(ts: float) -> int:
    whole = math.floor(ts)
    return int(whole) * _NS + round((ts - whole) * _NS)


# --------------------------------------------------------------------------- encoding


def _go_utf8_errors(exc: UnicodeError) -> tuple[str, int]:
    """Replace one byte per error, like Go's DecodeRune, with a marker escaped later.

    A lone surrogate never comes out of a strict UTF-8 decode, so it cannot be confused
    with a genuine U+FFFD in the input (which Go writes as raw bytes, not escaped).
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ud800", exc.start + 1


codecs.register_error("berth-go-utf8", _go_utf8_errors)

_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\",
                 ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029", 0xD800: "\\ufffd"})

# encoding/json (used for attrs) also shortens \t, and since Go 1.22 \b and \f.
_STD_ESCAPES = dict(_ESCAPES)
_STD_ESCAPES.update({ord("\t"): "\\t", ord("\b"): "\\b", ord("\f"): "\\f"})


def go_json_string(data: bytes | str, *, std: bool = False) -> str:
    """A JSON string literal exactly as moby's json-file encoder writes ``data``.

    ``std=True`` follows Go's ``encoding/json`` instead (short ``\\t``, ``\\b``, ``\\f``).
    """
    if isinstance(data, bytes):
        text = data.decode("utf-8", "berth-go-utf8")
    else:
        text = data.encode("utf-8", "surrogatepass").decode("utf-8", "berth-go-utf8")
    return '"' + text.translate(_STD_ESCAPES if std else _ESCAPES) + '"'


def encode_record(stream: str, data: bytes, ns: int, attrs: str = "") -> bytes:
    """One json-file line (with its trailing newline); ``attrs`` is pre-encoded JSON."""
    parts = []
    if data:
        parts.append('"log":' + go_json_string(data))
    parts.append('"stream":' + go_json_string(stream))
    if attrs:
        parts.append('"attrs":' + attrs)
    parts.append(f'"time":"{rfc3339nano(ns)}"')
    return ("{" + ",".join(parts) + "}\n").encode()


def _encode_attrs(attrs: Mapping[str, str] | None) -> str:
    """``json.Marshal(map[string]string)``: keys sorted, encoding/json escaping."""
    if not attrs:
        return ""
    return "{" + ",".join(go_json_string(k, std=True) + ":" + go_json_string(v, std=True)
                          for k, v in sorted(attrs.items())) + "}"


# --------------------------------------------------------------------------- options

LOG_OPTS = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env",
                      "env-regex", "tag", "mode", "max-buffer-size"})
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")


def _human_size(text: str) -> int:
    """go-units ``FromHumanSize``: decimal units (10m = 10,000,000), as json-file uses."""
    m = _SIZE_RE.match(text.strip())
    if m is None:
        raise ValueError(text)
    power = " kmgtp".index((m.group(2) or " ").lower())
    return int(float(m.group(1)) * 1000 ** power)


@dataclass(frozen=True, slots=True)
class JsonFileOptions:
    """The json-file log-opts that shape the writer."""

    max_size: int = 0
    max_file: int = 1
    compress: bool = False


def parse_log_opts(opts: Mapping[str, Any]) -> JsonFileOptions:
    """Validate json-file ``log-opts`` (daemon.json or ``--log-opt``) with docker's rules."""
    for key, value in opts.items():
        if key not in LOG_OPTS:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver "
                                  f"(valid: {', '.join(sorted(LOG_OPTS))})")
        if not isinstance(value, str):
            raise InvalidArgument(f"log opt {key!r} must be a string, got {json.dumps(value)}")
    max_size = 0
    if "max-size" in opts:
        try:
            max_size = _human_size(opts["max-size"])
        except ValueError:
            raise InvalidArgument(f"invalid size: '{opts['max-size']}' for log opt max-size "
                                  "(use a number with an optional k, m or g suffix, like "
                                  "\"10m\")") from None
        if max_size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    max_file = 1
    if "max-file" in opts:
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid max-file '{opts['max-file']}': it must be an "
                                  "integer >= 1") from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        if opts["compress"] not in ("true", "false"):
            raise InvalidArgument(f"invalid compress '{opts['compress']}': use \"true\" or "
                                  "\"false\"")
        compress = opts["compress"] == "true"
        if compress and not max_size:
            raise InvalidArgument("compress cannot be true when max-size is not set")
    mode = opts.get("mode", "blocking")
    if mode not in ("blocking", "non-blocking"):
        raise InvalidArgument(f"logger: logging mode not supported: {mode} "
                              "(use blocking or non-blocking)")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise InvalidArgument("logger: max-buffer-size option is only supported with "
                                  "'mode=non-blocking'")
        try:
            _human_size(opts["max-buffer-size"])
        except ValueError:
            raise InvalidArgument(f"invalid size: '{opts['max-buffer-size']}' for log opt "
                                  "max-buffer-size") from None
    return JsonFileOptions(max_size, max_file, compress)


# --------------------------------------------------------------------------- writer


class JsonFileWriter:
    """Appends a container's output to ``<id>-json.log`` like dockerd's json-file driver.

    Not thread-safe: one writer per container, fed by its supervisor.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_size: int = 0, max_file: int = 1,
                 compress: bool = False, attrs: Mapping[str, str] | None = None) -> None:
        # Options are validated when the container is created (parse_log_opts); by the
        # time a supervisor opens the log, refusing would leave the output uncopied.
        self.path = Path(path)
        self.max_size = max(0, max_size)
        self.max_file = max(1, max_file)
        # docker ignores compress when nothing is ever rotated out
        self.compress = bool(compress and self.max_size and self.max_file > 1)
        self.attrs = _encode_attrs(attrs)
        self.pending: dict[str, bytes] = {}
        self.last_ns = 0
        self.last_error: OSError | None = None
        self.dropped = 0
        self.fd = -1
        self._open(truncate=False)

    def _open(self, *, truncate: bool) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(self.path, flags | (os.O_TRUNC if truncate else 0), FILE_MODE)
        os.fchmod(self.fd, FILE_MODE)       # whatever the umask was
        self.size = os.fstat(self.fd).st_size

    # -- public API

    def write(self, stream: str, data: bytes, when: float | None = None) -> None:
        """Log ``data`` read from ``stream``; whole lines become records, the rest waits."""
        if stream not in STREAMS:
            raise InvalidArgument(f"log stream must be stdout or stderr, got {stream!r}")
        if not data:
            return
        ns = time.time_ns() if when is None else _to_ns(when)
        buf = self.pending.pop(stream, b"") + data
        records: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start, start + MAX_RECORD)
            if nl >= 0:
                records.append(buf[start:nl + 1])
                start = nl + 1
            elif len(buf) - start >= MAX_RECORD:     # buffer full, no newline: partial
                records.append(buf[start:start + MAX_RECORD])
                start += MAX_RECORD
            else:
                break
        if start < len(buf):
            self.pending[stream] = buf[start:]
        self._emit(stream, records, ns)

    def flush(self, when: float | None = None) -> None:
        """Log pending partial lines as records without newline (at container exit)."""
        ns = time.time_ns() if when is None else _to_ns(when)
        for stream in STREAMS:
            rest = self.pending.pop(stream, b"")
            if rest:
                self._emit(stream, [rest], ns)

    def close(self) -> None:
        if self.fd < 0:
            return
        self.flush()
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> JsonFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals

    def _emit(self, stream: str, pieces: Iterable[bytes], ns: int) -> None:
        batch: list[bytes] = []
        size = self.size
        for piece in pieces:
            if self.max_size and size >= self.max_size:
                self._write_out(batch)
                batch = []
                self._rotate()
                size = 0
            line = encode_record(stream, piece, ns, self.attrs)
            batch.append(line)
            size += len(line)
            self.last_ns = ns            # the gzip header of a rotated file records it
        self._write_out(batch)

    def _write_out(self, batch: list[bytes]) -> None:
        if not batch:
            return
        data = memoryview(b"".join(batch))
        try:
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
                self.size += n
        except OSError as exc:
            # dockerd logs "Error writing log entry" and goes on; the container must not
            # notice (its pipes would fill up if the supervisor stopped copying).
            self.last_error = exc
            self.dropped += 1

    def _rotate(self) -> None:
        os.close(self.fd)
        self.fd = -1
        name = str(self.path)
        try:
            if self.max_file < 2:
                _unlink(name)
            else:
                ext = ".gz" if self.compress else ""
                _unlink(f"{name}.{self.max_file - 1}{ext}")
                for i in range(self.max_file - 1, 1, -1):
                    try:
                        os.rename(f"{name}.{i - 1}{ext}", f"{name}.{i}{ext}")
                    except FileNotFoundError:
                        pass
                os.rename(name, f"{name}.1")
                if self.compress:
                    _compress(Path(f"{name}.1"), self.last_ns)
        except OSError as exc:
            self.last_error = exc
        self._open(truncate=True)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _compress(src: Path, last_ns: int) -> None:
    """gzip ``src`` to ``src.gz`` like moby's compressFile (lastTime in the header's Extra).

    Written to a temporary name first, so a reader finds either the plain file or a
    complete ``.gz``, never a half-written one.
    """
    extra = json.dumps({"lastTime": rfc3339nano(last_ns)}, separators=(",", ":")).encode()
    # Go's gzip.Writer: FEXTRA flag, MTIME 0, XFL 0, OS 255 (unknown)
    header = b"\x1f\x8b\x08\x04" + struct.pack("<IBB", 0, 0, 255) + \
        struct.pack("<H", len(extra)) + extra
    dst = Path(f"{src}.gz")
    tmp = Path(f"{src}.gz.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    comp = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = size = 0
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        out.write(header)
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            out.write(comp.compress(chunk))
        out.write(comp.flush())
        out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    os.replace(tmp, dst)
    os.unlink(src)


# --------------------------------------------------------------------------- reader


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One json-file record.

    ``time`` is the stored time in fixed 9-digit RFC3339Nano (the ``-t`` form; the file
    itself may trim trailing zeros), ``ts`` the same as epoch seconds, ``ns`` exactly.
    """

    stream: str
    time: str
    ts: float
    data: bytes
    ns: int = 0
    attrs: Mapping[str, str] | None = None

    @property
    def partial(self) -> bool:
        """A piece of a longer line (or the unterminated end of the output)."""
        return not self.data.endswith(b"\n")


def parse_record(line: bytes) -> LogRecord | None:
    """A record from one json-file line, or None for a corrupt line."""
    try:
        obj = json.loads(line)
        ns = parse_rfc3339(obj["time"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(obj, dict):
        return None
    log = obj.get("log", "")
    data = log.encode("utf-8", "surrogatepass") if isinstance(log, str) else b""
    attrs = obj.get("attrs")
    return LogRecord(str(obj.get("stream", "stdout")), rfc3339nano(ns, fixed=True),
                     ns / _NS, data, ns, attrs if isinstance(attrs, dict) else None)


def _rotated_names(path: Path) -> list[Path]:
    """Rotated files of ``path``, oldest first; ``.N`` wins over ``.N.gz`` (mid-compress)."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)(\.gz)?\Z")
    found: dict[int, Path] = {}
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        n = int(m.group(1))
        if n not in found or not m.group(2):
            found[n] = path.parent / name
    return [found[n] for n in sorted(found, reverse=True)]


class _Rotated:
    """A rotated file held open: its content no longer changes, whatever its name does."""

    def __init__(self, path: Path, raw: BinaryIO) -> None:
        self.path = path
        self.raw = raw
        st = os.fstat(raw.fileno())
        self.ino, self.size = st.st_ino, st.st_size
        head = raw.read(2)
        raw.seek(0)
        self.gz = head == b"\x1f\x8b"

    def reader(self) -> BinaryIO:
        self.raw.seek(0)
        if self.gz:
            return gzip.GzipFile(fileobj=self.raw, mode="rb")  # type: ignore[return-value]
        return self.raw

    def lines(self) -> Iterator[bytes]:
        return _complete_lines(self.reader())

    def tail(self, n: int) -> list[bytes]:
        if self.gz:
            return list(collections.deque(self.lines(), maxlen=n)) if n else []
        return _tail_plain(self.raw, n, _last_complete(self.raw, self.size))

    def header_time(self) -> int | None:
        """docker's ``lastTime`` from the gzip header's Extra field (epoch ns)."""
        if not self.gz:
            return None
        self.raw.seek(0)
        return _gzip_header_time(self.raw)

    def last_time(self) -> int | None:
        """Time of the last record (the gzip header's, when it has one)."""
        t = self.header_time()
        if t is None:
            last = self.tail(1)
            rec = parse_record(last[0]) if last else None
            t = rec.ns if rec else None
        return t

    def trailer(self) -> tuple[int, int]:
        """(uncompressed size mod 2**32, CRC32) from a gzip trailer."""
        self.raw.seek(-8, os.SEEK_END)
        crc, size = struct.unpack("<II", self.raw.read(8))
        return size, crc

    def close(self) -> None:
        self.raw.close()


def _snapshot(path: Path, live: _Live | None = None) -> list[_Rotated]:
    """The rotated files, oldest first, and the live file, opened as one consistent set.

    The writer may rotate while we open them one by one (``.1`` becoming ``.2``, the
    live file becoming ``.1``...); listing again afterwards and finding the same names on
    the same inodes proves that what we hold is one state of the directory.  Otherwise
    try again.  ``live`` (closed) is opened too; it stays closed if there is no file.
    """
    held: list[_Rotated] = []
    for _attempt in range(100):
        names = _rotated_names(path)
        held = []
        for name in names:
            try:
                held.append(_Rotated(name, open(name, "rb")))  # noqa: SIM115 - caller closes
            except FileNotFoundError:
                break
        has_live = live is not None and live.open()
        if len(held) == len(names) and _rotated_names(path) == names and \
                all(_same_inode(r.path, r.ino) for r in held) and \
                (not has_live or _same_inode(path, live.ino)):  # type: ignore[union-attr]
            return held
        for r in held:
            r.close()
        if live is not None:
            live.close()
        time.sleep(0.001)
    raise OSError(f"{path} keeps rotating: cannot get a consistent view of its files")


def _same_inode(p: Path, ino: int) -> bool:
    try:
        return os.stat(p).st_ino == ino
    except FileNotFoundError:
        return False


def _gzip_header_time(f: BinaryIO) -> int | None:
    try:
        head = f.read(12)
        if len(head) < 12 or head[:2] != b"\x1f\x8b" or not head[3] & 4:
            return None
        (xlen,) = struct.unpack("<H", head[10:12])
        meta = json.loads(f.read(xlen))
        return parse_rfc3339(meta["lastTime"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gzip_last_time(p: Path) -> int | None:
    """The ``lastTime`` docker stores in a rotated ``.gz`` header (epoch ns), if any."""
    try:
        with open(p, "rb") as f:
            return _gzip_header_time(f)
    except OSError:
        return None


def _complete_lines(f: BinaryIO) -> Iterator[bytes]:
    for line in f:
        if line.endswith(b"\n"):
            yield line


def _tail_plain(f: BinaryIO, n: int, end: int) -> list[bytes]:
    """The last ``n`` complete lines before ``end``, reading backwards in blocks."""
    pos, chunks, newlines = end, [], 0
    while pos > 0 and newlines <= n:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
    data = b"".join(reversed(chunks))
    lines = data.split(b"\n")[:-1]       # data ends with a newline: last piece is empty
    return [ln + b"\n" for ln in lines[-n:]] if n else []


def _last_complete(f: BinaryIO, size: int) -> int:
    """Offset just after the last newline at or before ``size`` (0 when none)."""
    pos = size
    while pos > 0:
        step = min(_BLOCK, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


class _Live:
    """The file being written, read by descriptor: a rename never loses or repeats a line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: BinaryIO | None = None
        self.ino = -1
        self.offset = 0
        self.buf = b""

    def open(self) -> bool:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - held across polls, see close()
        except FileNotFoundError:
            return False
        self.f, self.ino, self.offset, self.buf = f, os.fstat(f.fileno()).st_ino, 0, b""
        return True

    def end(self) -> int:
        """Offset after the last complete line right now."""
        assert self.f is not None
        return _last_complete(self.f, os.fstat(self.f.fileno()).st_size)

    def seek(self, offset: int) -> None:
        self.offset = offset
        self.buf = b""

    def lines_until(self, end: int) -> Iterator[bytes]:
        assert self.f is not None
        self.f.seek(0)
        remaining = end
        for line in self.f:
            if remaining <= 0:
                break
            remaining -= len(line)
            yield line

    def read(self) -> list[bytes]:
        """Complete lines appended since the last call."""
        assert self.f is not None
        if os.fstat(self.f.fileno()).st_size < self.offset:     # truncated in place
            self.offset, self.buf = 0, b""
        self.f.seek(self.offset)
        chunk = self.f.read()
        self.offset += len(chunk)
        if not chunk:
            return []
        data = self.buf + chunk
        cut = data.rfind(b"\n") + 1
        self.buf = data[cut:]
        return [ln + b"\n" for ln in data[:cut].split(b"\n")[:-1]]

    def rotated(self) -> bool:
        """The path now names another file (or none): ours was rotated away."""
        return not _same_inode(self.path, self.ino)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def _missed(rotated: list[_Rotated], last_ns: int, held: BinaryIO | None) -> list[_Rotated]:
    """The rotated files we have not read, after losing track of the live file.

    ``held`` is the file we were reading when it was rotated away (drained).  It is
    found in ``rotated`` by inode while plain, by gzip trailer (CRC32 and size) once
    compressed; the files after it are the missed ones, and if it is gone (rotated out
    past max-file) every file left is newer.  Holding none (the file did not exist),
    the files whose last record is newer than the last one read are the missed ones.
    """
    if held is None:
        return [r for r in rotated if (r.last_time() or 0) > last_ns]
    st = os.fstat(held.fileno())
    crc: int | None = None
    for i, r in enumerate(rotated):
        if not r.gz:
            if r.ino == st.st_ino:
                return rotated[i + 1:]
            continue
        size, r_crc = r.trailer()
        if size != st.st_size % 2**32:
            continue
        if crc is None:
            crc = _crc32(held)
        if r_crc == crc:
            return rotated[i + 1:]
    return rotated


def _crc32(f: BinaryIO) -> int:
    f.seek(0)
    crc = 0
    while chunk := f.read(1 << 20):
        crc = zlib.crc32(chunk, crc)
    return crc & 0xFFFFFFFF


class _Window:
    """``--since``/``--until``: records before ``since`` are skipped, reading ends after
    ``until`` (records are in time order, so nothing later can qualify)."""

    def __init__(self, since: float | None, until: float | None) -> None:
        self.since = None if since is None else _to_ns(since)
        self.until = None if until is None else _to_ns(until)
        self.done = False
        self.last_ns = 0                  # newest record seen, filtered or not

    def records(self, lines: Iterable[bytes]) -> Iterator[LogRecord]:
        for line in lines:
            rec = parse_record(line)
            if rec is None:
                continue
            self.last_ns = rec.ns
            if self.since is not None and rec.ns < self.since:
                continue
            if self.until is not None and rec.ns > self.until:
                self.done = True
                return
            yield rec

    def expired(self) -> bool:
        return self.until is not None and time.time_ns() > self.until


def read_logs(path: str | os.PathLike[str], *, since: float | None = None,
              until: float | None = None, tail: int | None = None, follow: bool = False,
              is_running: Callable[[], bool] = lambda: False,
              poll: float = 0.1) -> Iterator[LogRecord]:
    """Records of a json-file log (rotated files first, oldest first), like ``docker logs``.

    ``tail`` counts records from the end across rotated files (applied before
    ``since``/``until``, as docker does); None or a negative value means all.  ``since``
    keeps records at or after it, reading stops at the first record after ``until``.
    With ``follow``, new records are yielded as they are written, across rotations,
    until ``is_running()`` is False and everything written is read (or ``until`` passed).
    """
    path = Path(path)
    window = _Window(since, until)
    if tail is not None and tail < 0:
        tail = None
    live = _Live(path)
    rotated = _snapshot(path, live)
    try:
        if window.since is not None:  # docker skips compressed files older than --since
            rotated = [r for r in rotated if (r.header_time() or window.since) >= window.since]
        end = live.end() if live.f is not None else 0
        yield from window.records(_history(live, end, rotated, tail))
        if window.done:
            return
        live.seek(end)
        for r in rotated:
            r.close()
        rotated = []
        if follow:
            yield from _follow(live, window, is_running, poll)
    finally:
        for r in rotated:
            r.close()
        live.close()


def _history(live: _Live, end: int, rotated: list[_Rotated], tail: int | None
             ) -> Iterator[bytes]:
    if tail is None:
        for r in rotated:
            yield from r.lines()
        if live.f is not None:
            yield from live.lines_until(end)
        return
    # the last ``tail`` lines: newest file first, stopping as soon as there are enough
    parts: list[list[bytes]] = []
    want = tail
    if live.f is not None and want:
        parts.append(_tail_plain(live.f, want, end))
        want -= len(parts[-1])
    for r in reversed(rotated):
        if want <= 0:
            break
        parts.append(r.tail(want))
        want -= len(parts[-1])
    for part in reversed(parts):
        yield from part


def _follow(live: _Live, window: _Window, is_running: Callable[[], bool],
            poll: float) -> Iterator[LogRecord]:
    # The file rotated away from under us, kept open until we know which files came
    # after it (and so that its inode cannot be reused meanwhile).
    held: BinaryIO | None = None
    # quick at first (a short container's last lines and its exit are seen within
    # milliseconds), backing off to ``poll`` while nothing happens
    delay = min(0.002, poll)
    try:
        while True:
            # Asked before reading: whatever was written before the container stopped
            # is in the file by now, so a drained file and "not running" means the end.
            running = is_running()
            lines: list[bytes] = []
            switched = False
            if live.f is None:
                # opens the live file, with what was rotated out since the one we lost
                missed = _catch_up(live, window.last_ns, held)
                if live.f is not None:
                    if held is not None:
                        held.close()
                    held = None
                    lines = missed + live.read()
            else:
                lines = live.read()
                if not lines and live.rotated():
                    lines = live.read()          # written just before the rename
                    held, switched = live.f, True
                    live.f = None                # closed once caught up
            yield from window.records(lines)
            if window.done:
                return
            if lines or switched:
                delay = min(0.002, poll)
                continue                         # more may be waiting: no sleep
            if not running or window.expired():
                return
            time.sleep(delay)
            delay = min(delay * 2, poll)
    finally:
        if held is not None:
            held.close()


def _catch_up(live: _Live, last_ns: int, held: BinaryIO | None) -> list[bytes]:
    """Open the live file (if there is one) and read the rotated files written between
    the file we lost and it."""
    rotated = _snapshot(live.path, live)
    try:
        if live.f is None:
            return []       # no live file yet: catch up once there is one
        return [line for r in _missed(rotated, last_ns, held) for line in r.lines()]
    finally:
        for r in rotated:
            r.close()


__all__ = ["MAX_RECORD", "JsonFileWriter", "JsonFileOptions", "LogRecord", "read_logs",
           "format_timestamp", "rfc3339nano", "parse_rfc3339", "parse_log_opts",
           "go_json_string", "encode_record", "parse_record", "gzip_last_time"]

