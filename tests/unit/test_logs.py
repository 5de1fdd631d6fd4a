"""json-file log driver: docker's exact bytes, rotation, reading back, following."""

from __future__ import annotations

import calendar
import gzip
import json
import os
import threading
import time
from pathlib import Path

import pytest

from sdk.errors import InvalidArgument
from sdk.tasks import logs
from sdk.tasks.logs import (
    MAX_RECORD,
    JsonFileOptions,
    JsonFileWriter,
    LogRecord,
    format_timestamp,
    go_json_string,
    gzip_last_time,
    parse_log_opts,
    parse_record,
    parse_rfc3339,
    read_logs,
    rfc3339nano,
)

# 2026-11-24T09:41:02Z; fractions used below are exact in binary floating point
T0 = calendar.timegm((2026, 11, 24, 9, 41, 2, 0, 0, 0))


def _write(tmp_path: Path, *chunks: tuple[str, bytes], when: float = T0 + 0.125,
           flush: bool = False) -> bytes:
    path = tmp_path / "c-json.log"
    w = JsonFileWriter(path)
    for stream, data in chunks:
        w.write(stream, data, when=when)
    if flush:
        w.flush(when=when)
    os.close(w.fd)      # close without the flush close() does
    return path.read_bytes()


# --------------------------------------------------------------------------- format


def test_simple_line_is_byte_identical(tmp_path: Path) -> None:
    out = _write(tmp_path, ("stdout", b"hello world\n"))
    assert out == b'{"log":"hello world\\n","stream":"stdout",' \
                  b'"time":"2026-11-24T09:41:02.125Z"}\n'


def test_html_characters_are_escaped_like_go(tmp_path: Path) -> None:
    out = _write(tmp_path, ("stderr", b'<a href="x">&amp;</a>\n'))
    assert out == (b'{"log":"\\u003ca href=\\"x\\"\\u003e\\u0026amp;\\u003c/a\\u003e\\n",'
                   b'"stream":"stderr","time":"2026-11-24T09:41:02.125Z"}\n')


def test_invalid_utf8_is_replaced_one_byte_at_a_time(tmp_path: Path) -> None:
    # Go's DecodeRune: \xe2\x82 (a truncated 3-byte sequence) is two errors, not one
    out = _write(tmp_path, ("stdout", b"a\xffb\xe2\x82c\xed\xa0\x80\n"))
    log = json.loads(out)["log"]
    assert out.startswith(b'{"log":"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffd\\n"')
    assert log == "a\ufffdb\ufffd\ufffdc\ufffd\ufffd\ufffd\n"


def test_control_characters_and_unicode(tmp_path: Path) -> None:
    data = "tab\tnul\x00esc\x1b del\x7f é \ufffd \u2028\u2029 \\ \"q\"\n".encode()
    out = _write(tmp_path, ("stdout", data))
    expected_log = ('tab\\u0009nul\\u0000esc\\u001b del\x7f é \ufffd \\u2028\\u2029 '
                    '\\\\ \\"q\\"\\n')
    assert out == ('{"log":"' + expected_log + '","stream":"stdout",'
                   '"time":"2026-11-24T09:41:02.125Z"}\n').encode()
    assert json.loads(out)["log"].encode() == data


def test_carriage_returns_are_kept(tmp_path: Path) -> None:
    out = _write(tmp_path, ("stdout", b"10%\r50%\r100%\r\n"))
    assert out.startswith(b'{"log":"10%\\r50%\\r100%\\r\\n","stream":"stdout"')


def test_no_trailing_newline_waits_for_flush(tmp_path: Path) -> None:
    assert _write(tmp_path, ("stdout", b"prompt> ")) == b""
    out = _write(tmp_path, ("stdout", b"prompt> "), flush=True)
    assert out == b'{"log":"prompt\\u003e ","stream":"stdout",' \
                  b'"time":"2026-11-24T09:41:02.125Z"}\n'


def test_close_flushes_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    with JsonFileWriter(path) as w:
        w.write("stdout", b"no newline", when=T0)
    assert [r.data for r in read_logs(path)] == [b"no newline"]
    w.close()   # idempotent


def test_lines_split_across_writes_and_streams_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = JsonFileWriter(path)
    w.write("stdout", b"hel", when=T0)
    w.write("stderr", b"oops\n", when=T0 + 1)
    w.write("stdout", b"lo\nwor", when=T0 + 2)
    w.write("stdout", b"ld\n", when=T0 + 3)
    w.close()
    recs = list(read_logs(path))
    assert [(r.stream, r.data, r.ts) for r in recs] == [
        ("stderr", b"oops\n", T0 + 1), ("stdout", b"hello\n", T0 + 2),
        ("stdout", b"world\n", T0 + 3)]


def test_20k_line_becomes_a_partial_record_and_the_rest(tmp_path: Path) -> None:
    out = _write(tmp_path, ("stdout", b"x" * 20480 + b"\n"))
    lines = out.splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["log"] == "x" * MAX_RECORD          # no newline: partial
    assert json.loads(lines[1])["log"] == "x" * (20480 - MAX_RECORD) + "\n"


@pytest.mark.parametrize("length, pieces", [
    (MAX_RECORD - 1, [MAX_RECORD]),                 # fits with its newline: one record
    (MAX_RECORD, [MAX_RECORD, 1]),                  # docker's buffer fills: "\n" alone
    (2 * MAX_RECORD + 5, [MAX_RECORD, MAX_RECORD, 6]),
])
def test_split_points_match_dockers_copier(tmp_path: Path, length: int,
                                            pieces: list[int]) -> None:
    out = _write(tmp_path, ("stdout", b"y" * length + b"\n"))
    logs_ = [json.loads(line)["log"] for line in out.splitlines()]
    assert [len(x) for x in logs_] == pieces
    assert "".join(logs_) == "y" * length + "\n"


def test_long_line_written_in_small_chunks(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = JsonFileWriter(path)
    data = b"z" * 40000 + b"\n"
    for i in range(0, len(data), 1000):
        w.write("stdout", data[i:i + 1000], when=T0)
    w.close()
    recs = list(read_logs(path))
    assert [len(r.data) for r in recs] == [MAX_RECORD, MAX_RECORD, 40001 - 2 * MAX_RECORD]
    assert [r.partial for r in recs] == [True, True, False]


def test_attrs_are_sorted_and_escaped(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = JsonFileWriter(path, attrs={"tag": "web\t1", "a": "<b>"})
    w.write("stdout", b"hi\n", when=T0)
    w.close()
    assert path.read_bytes() == (b'{"log":"hi\\n","stream":"stdout","attrs":{"a":"\\u003cb'
                                 b'\\u003e","tag":"web\\t1"},"time":"2026-11-24T09:41:02Z"}\n')
    assert next(read_logs(path)).attrs == {"a": "<b>", "tag": "web\t1"}


def test_file_mode_is_0640_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        JsonFileWriter(tmp_path / "c-json.log").close()
    finally:
        os.umask(old)
    assert (tmp_path / "c-json.log").stat().st_mode & 0o777 == 0o640


def test_reopening_appends(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    for i in range(2):
        with JsonFileWriter(path) as w:
            w.write("stdout", f"run {i}\n".encode(), when=T0 + i)
    assert [r.data for r in read_logs(path)] == [b"run 0\n", b"run 1\n"]


def test_out_of_range_options_are_clamped(tmp_path: Path) -> None:
    # validated at create time (parse_log_opts); the writer must never refuse to log
    w = JsonFileWriter(tmp_path / "c-json.log", max_size=-1, max_file=0, compress=True)
    assert (w.max_size, w.max_file, w.compress) == (0, 1, False)
    w.close()


def test_unknown_stream_is_refused(tmp_path: Path) -> None:
    w = JsonFileWriter(tmp_path / "c-json.log")
    with pytest.raises(InvalidArgument, match="stdout or stderr"):
        w.write("stdin", b"x\n")
    w.close()


def test_go_json_string_for_str_and_bytes() -> None:
    assert go_json_string("a<b") == '"a\\u003cb"'
    assert go_json_string(b"\xc0\x80") == '"\\ufffd\\ufffd"'    # overlong: 2 errors
    assert go_json_string("t\tb\b", std=True) == '"t\\tb\\b"'


# --------------------------------------------------------------------------- time


def test_time_formats() -> None:
    ns = (T0 * 10**9) + 123_456_789
    assert rfc3339nano(ns) == "2026-11-24T09:41:02.123456789Z"
    assert rfc3339nano(T0 * 10**9 + 120_000_000) == "2026-11-24T09:41:02.12Z"   # Go trims
    assert rfc3339nano(T0 * 10**9) == "2026-11-24T09:41:02Z"
    assert rfc3339nano(T0 * 10**9 + 120_000_000, fixed=True) == \
        "2026-11-24T09:41:02.120000000Z"
    assert format_timestamp(T0 + 0.5) == "2026-11-24T09:41:02.500000000Z"
    assert format_timestamp(T0) == "2026-11-24T09:41:02.000000000Z"


def test_parse_rfc3339() -> None:
    base = T0 * 10**9
    assert parse_rfc3339("2026-11-24T09:41:02Z") == base
    assert parse_rfc3339("2026-11-24T09:41:02.5Z") == base + 500_000_000
    assert parse_rfc3339("2026-11-24T10:41:02.000000001+01:00") == base + 1
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


def test_record_time_is_the_fixed_form_of_what_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    with JsonFileWriter(path) as w:
        w.write("stdout", b"a\n", when=T0 + 0.25)
    assert b'"time":"2026-11-24T09:41:02.25Z"' in path.read_bytes()
    rec = next(read_logs(path))
    assert rec == LogRecord("stdout", "2026-11-24T09:41:02.250000000Z", T0 + 0.25, b"a\n",
                            T0 * 10**9 + 250_000_000)


def test_reads_records_written_by_docker() -> None:
    line = b'{"log":"\\u003chi\\u003e\\n","stream":"stderr","time":"2023-05-01T10:00:00.5Z"}'
    rec = parse_record(line)
    assert rec is not None and rec.data == b"<hi>\n" and rec.stream == "stderr"
    assert rec.time == "2023-05-01T10:00:00.500000000Z"
    assert parse_record(b"{garbage") is None


# --------------------------------------------------------------------------- rotation


def _record_len(i: int) -> int:
    return len(logs.encode_record("stdout", f"line {i:03d}\n".encode(),
                                  (T0 + i) * 10**9))


def _fill(path: Path, n: int, **kw: object) -> None:
    with JsonFileWriter(path, **kw) as w:  # type: ignore[arg-type]
        for i in range(n):
            w.write("stdout", f"line {i:03d}\n".encode(), when=T0 + i)


def _lines(recs: list[LogRecord]) -> list[int]:
    return [int(r.data.split()[1]) for r in recs]


def test_rotation_with_max_file_3_and_compress(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    size = _record_len(0)
    # rotation happens before a write once the file has reached max-size: 3 records a file
    _fill(path, 10, max_size=3 * size, max_file=3, compress=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    assert _lines(list(read_logs(path))) == list(range(3, 10))
    with gzip.open(tmp_path / "c-json.log.1.gz") as f:
        assert _lines([parse_record(x) for x in f]) == [6, 7, 8]  # type: ignore[misc]
    # docker's header Extra: {"lastTime": <time of the file's last record>}
    assert gzip_last_time(tmp_path / "c-json.log.1.gz") == (T0 + 8) * 10**9
    assert (tmp_path / "c-json.log.2.gz").stat().st_mode & 0o777 == 0o640


def test_rotation_without_compress(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 10, max_size=3 * _record_len(0), max_file=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert _lines(list(read_logs(tmp_path / "c-json.log.1"))) == [6, 7, 8]
    assert _lines(list(read_logs(path))) == list(range(3, 10))


def test_max_file_1_truncates(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 10, max_size=3 * _record_len(0), max_file=1, compress=True)
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert _lines(list(read_logs(path))) == [9]


def test_file_may_overshoot_max_size_by_one_record_like_docker(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    size = _record_len(0)
    _fill(path, 4, max_size=2 * size + 1, max_file=2)
    assert (tmp_path / "c-json.log.1").stat().st_size == 3 * size   # > max_size
    assert _lines(list(read_logs(path))) == [0, 1, 2, 3]


def test_rotation_inside_one_write(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    size = _record_len(0)
    with JsonFileWriter(path, max_size=2 * size, max_file=4) as w:
        w.write("stdout", b"".join(f"line {i:03d}\n".encode() for i in range(7)), when=T0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c-json.log", "c-json.log.1", "c-json.log.2", "c-json.log.3"]
    assert _lines(list(read_logs(path))) == list(range(7))


def test_no_rotation_without_max_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 50, max_file=3, compress=True)
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]


# --------------------------------------------------------------------------- reading


@pytest.fixture
def rotated(tmp_path: Path) -> Path:
    """Records 3..9 in c-json.log.2.gz (3-5), .1.gz (6-8) and c-json.log (9)."""
    path = tmp_path / "c-json.log"
    _fill(path, 10, max_size=3 * _record_len(0), max_file=3, compress=True)
    return path


@pytest.mark.parametrize("tail, expected", [
    (0, []), (1, [9]), (2, [8, 9]), (5, [5, 6, 7, 8, 9]), (7, list(range(3, 10))),
    (100, list(range(3, 10))), (-1, list(range(3, 10))), (None, list(range(3, 10))),
])
def test_tail_across_rotated_files(rotated: Path, tail: int | None,
                                   expected: list[int]) -> None:
    assert _lines(list(read_logs(rotated, tail=tail))) == expected


def test_tail_of_plain_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 10, max_size=3 * _record_len(0), max_file=4)
    assert _lines(list(read_logs(path, tail=4))) == [6, 7, 8, 9]
    assert _lines(list(read_logs(path, tail=8))) == list(range(2, 10))


@pytest.mark.parametrize("since, until, expected", [
    (T0 + 5, None, [5, 6, 7, 8, 9]),               # since is inclusive
    (T0 + 5.5, None, [6, 7, 8, 9]),
    (None, T0 + 4, [3, 4]),                        # until is inclusive
    (T0 + 4, T0 + 7, [4, 5, 6, 7]),
    (T0 + 100, None, []),
    (None, T0, []),
])
def test_since_until(rotated: Path, since: float | None, until: float | None,
                     expected: list[int]) -> None:
    assert _lines(list(read_logs(rotated, since=since, until=until))) == expected


def test_tail_is_applied_before_since(rotated: Path) -> None:
    # docker: the last 3 records, then those at or after since
    assert _lines(list(read_logs(rotated, tail=3, since=T0 + 8))) == [8, 9]


def test_since_skips_compressed_files_by_header(rotated: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    real = logs._Rotated.lines

    def spy(self: logs._Rotated):  # type: ignore[no-untyped-def]
        read.append(self.path.name)
        return real(self)

    monkeypatch.setattr(logs._Rotated, "lines", spy)
    assert _lines(list(read_logs(rotated, since=T0 + 7))) == [7, 8, 9]
    assert read == ["c-json.log.1.gz"]          # .2.gz ends at record 5: not read


def test_missing_file_reads_nothing(tmp_path: Path) -> None:
    assert list(read_logs(tmp_path / "nope.log")) == []
    assert list(read_logs(tmp_path / "nope.log", tail=3)) == []


def test_incomplete_last_line_is_not_returned(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 2)
    with open(path, "ab") as f:
        f.write(b'{"log":"half')
    assert _lines(list(read_logs(path))) == [0, 1]
    assert _lines(list(read_logs(path, tail=1))) == [1]


def test_corrupt_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 1)
    with open(path, "ab") as f:
        f.write(b"not json\n")
    _fill(path, 2)
    assert _lines(list(read_logs(path))) == [0, 0, 1]


def test_tail_does_not_read_a_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    with open(path, "wb") as f:          # 1 GiB hole (sparse: no disk used), then records
        f.truncate(1 << 30)
    _fill(path, 20)
    start = time.monotonic()
    assert _lines(list(read_logs(path, tail=10))) == list(range(10, 20))
    assert time.monotonic() - start < 0.5


# --------------------------------------------------------------------------- follow


def test_follow_stops_when_the_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 2)
    running = threading.Event()
    running.set()

    def produce() -> None:
        with JsonFileWriter(path) as w:
            for i in range(2, 30):
                w.write("stdout", f"line {i:03d}\n".encode(), when=T0 + i)
                time.sleep(0.002)
            w.write("stdout", b"line 030 (no newline at exit)")
        running.clear()

    thread = threading.Thread(target=produce)
    thread.start()
    recs = list(read_logs(path, follow=True, is_running=running.is_set, poll=0.01))
    thread.join()
    assert _lines(recs) == list(range(31))
    assert recs[-1].data == b"line 030 (no newline at exit)"


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("same_time", [False, True])
def test_follow_across_many_rotations(tmp_path: Path, compress: bool, same_time: bool) -> None:
    # several rotations can happen between two polls; no line may be lost or repeated
    # (max_file is large enough that nothing is rotated out before it is read)
    path = tmp_path / "c-json.log"
    writer = JsonFileWriter(path, max_size=3 * _record_len(0), max_file=200,
                            compress=compress)
    running = threading.Event()
    running.set()

    def produce() -> None:
        for i in range(300):
            when = T0 + (i // 10 if same_time else i)   # same_time: ties across files
            writer.write("stdout", f"line {i:03d}\n".encode(), when=when)
            if i % 7 == 0:
                time.sleep(0.002)
        writer.close()
        running.clear()

    thread = threading.Thread(target=produce)
    thread.start()
    recs = list(read_logs(path, follow=True, is_running=running.is_set, poll=0.005))
    thread.join()
    assert _lines(recs) == list(range(300))


def test_follow_when_one_write_spans_several_rotations(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 2)
    writer = JsonFileWriter(path, max_size=2 * _record_len(0), max_file=10, compress=True)
    states = iter([True, True])

    def running() -> bool:
        state = next(states, False)
        if state:       # between two polls: 9 records, 4 rotations, all the same time
            writer.write("stdout", b"".join(f"line {i:03d}\n".encode()
                                            for i in range(2, 11)), when=T0 + 50)
        return state

    recs = list(read_logs(path, follow=True, is_running=running, poll=0.001))
    writer.close()
    assert _lines(recs) == list(range(2)) + list(range(2, 11)) * 2


def test_follow_with_tail_only_returns_new_lines_after_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 5)
    calls = iter([True, True, False])
    it = read_logs(path, tail=1, follow=True, is_running=lambda: next(calls, False),
                   poll=0.001)
    assert _lines([next(it)]) == [4]
    with JsonFileWriter(path) as w:
        w.write("stdout", b"line 005\n", when=T0 + 5)
    assert _lines(list(it)) == [5]


def test_follow_waits_for_the_file_to_appear(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    running = threading.Event()
    running.set()

    def produce() -> None:
        time.sleep(0.05)
        _fill(path, 3)
        running.clear()

    thread = threading.Thread(target=produce)
    thread.start()
    recs = list(read_logs(path, follow=True, is_running=running.is_set, poll=0.01))
    thread.join()
    assert _lines(recs) == [0, 1, 2]


def test_follow_stops_after_until(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 3)
    start = time.monotonic()
    recs = list(read_logs(path, follow=True, until=time.time() + 0.1,
                          is_running=lambda: True, poll=0.01))
    assert _lines(recs) == [0, 1, 2]
    assert time.monotonic() - start < 2


def test_follow_stops_at_a_record_after_until(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    _fill(path, 6)
    recs = list(read_logs(path, follow=True, until=T0 + 2, is_running=lambda: True))
    assert _lines(recs) == [0, 1, 2]


# --------------------------------------------------------------------------- log-opts


def test_parse_log_opts() -> None:
    assert parse_log_opts({}) == JsonFileOptions()
    assert parse_log_opts({"max-size": "10m", "max-file": "3", "compress": "true"}) == \
        JsonFileOptions(10_000_000, 3, True)            # json-file sizes are decimal
    assert parse_log_opts({"max-size": "1.5k", "labels": "a,b", "tag": "{{.Name}}"}) == \
        JsonFileOptions(1500, 1, False)


@pytest.mark.parametrize("opts, message", [
    ({"max-sise": "1m"}, "unknown log opt 'max-sise' for json-file log driver"),
    ({"max-size": "10x"}, "invalid size: '10x'"),
    ({"max-size": "0"}, "max-size must be a positive number"),
    ({"max-file": "0"}, "max-file cannot be less than 1"),
    ({"max-file": "three"}, "invalid max-file 'three'"),
    ({"max-file": 3}, "log opt 'max-file' must be a string, got 3"),
    ({"compress": "yes", "max-size": "1m"}, "invalid compress 'yes'"),
    ({"compress": "true"}, "compress cannot be true when max-size is not set"),
    ({"mode": "fast"}, "logging mode not supported: fast"),
    ({"max-buffer-size": "1m"}, "only supported with 'mode=non-blocking'"),
])
def test_parse_log_opts_errors(opts: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_log_opts(opts)
    assert message in str(info.value)
