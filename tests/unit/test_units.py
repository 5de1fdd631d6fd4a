"""docker/go-units, docker/cli flag parsers and Go's time.ParseDuration, by known answers."""

from __future__ import annotations

import pytest

from sdk._internal import units
from sdk._internal.units import (
    GIB,
    KB,
    KIB,
    MB,
    MIB,
    PB,
    PIB,
    TIB,
    bytes_size,
    human_size,
    parse_bytes,
    parse_cpus,
    parse_device_iops,
    parse_device_rate,
    parse_device_weight,
    parse_duration,
    parse_duration_ns,
    parse_size_decimal,
    parse_ulimit,
    validate_nano_cpus,
)
from sdk.errors import InvalidArgument

# go-units size_test.go TestRAMInBytes
RAM_OK = [
    ("32", 32), ("32b", 32), ("32B", 32), ("32k", 32 * KIB), ("32K", 32 * KIB),
    ("32kb", 32 * KIB), ("32Kb", 32 * KIB), ("32Kib", 32 * KIB), ("32KIB", 32 * KIB),
    ("32Mb", 32 * MIB), ("32Gb", 32 * GIB), ("32Tb", 32 * TIB), ("32Pb", 32 * PIB),
    ("32PB", 32 * PIB), ("32P", 32 * PIB), ("32.3", 32), ("32.3 mb", int(32.3 * MIB)),
    ("0.3MB", int(0.3 * MIB)), ("64m", 67108864), ("1.5g", 1610612736), ("1g", GIB),
    ("0", 0), ("1.", 1), (".5k", 512), ("1e3", 1000), ("32 ", 32), ("0x1p4", 16),
]


@pytest.mark.parametrize(("text", "want"), RAM_OK)
def test_ram_in_bytes(text: str, want: int) -> None:
    assert parse_bytes(text) == want


RAM_BAD = [
    ("", "invalid size: ''"), ("hello", "invalid size: 'hello'"),
    ("-32", "invalid size: '-32'"), ("-1x", "invalid size: '-1x'"),
    (" 32 ", 'strconv.ParseFloat: parsing " 32": invalid syntax'),
    ("32m b", 'strconv.ParseFloat: parsing "32m": invalid syntax'),
    ("32bm", "invalid suffix: 'bm'"), ("12q", "invalid suffix: 'q'"),
    ("12Q", "invalid suffix: 'q'"), ("1kibx", "invalid suffix: 'kibx'"),
    ("1kx", "invalid suffix: 'kx'"), ("1kbb", "invalid suffix: 'kbb'"),
    ("1.2.3", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ("1_000", 'strconv.ParseFloat: parsing "1_000": invalid syntax'),
    ("1e999", 'strconv.ParseFloat: parsing "1e999": value out of range'),
    ("0x10", 'strconv.ParseFloat: parsing "0x10": invalid syntax'),
    ("inf", "invalid size: 'inf'"), ("-1", "invalid size: '-1'"),
]


@pytest.mark.parametrize(("text", "message"), RAM_BAD)
def test_ram_in_bytes_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_bytes(text)
    assert str(exc.value) == message


def test_minus_one_only_when_allowed() -> None:
    assert parse_bytes("-1", allow_negative_one=True) == -1
    assert parse_bytes(-1, allow_negative_one=True) == -1
    assert parse_bytes(1024) == 1024
    with pytest.raises(InvalidArgument):
        parse_bytes(-1)
    with pytest.raises(InvalidArgument):
        parse_bytes("-2", allow_negative_one=True)


# go-units TestFromHumanSize: what json-file's max-size uses
@pytest.mark.parametrize(("text", "want"), [
    ("32", 32), ("32b", 32), ("32B", 32), ("32k", 32 * KB), ("32K", 32 * KB),
    ("32kb", 32 * KB), ("32Kb", 32 * KB), ("32Mb", 32 * MB), ("32Gb", 32 * 1000**3),
    ("32Tb", 32 * 1000**4), ("32Pb", 32 * PB), ("32.5kB", 32500), ("32.5 kB", 32500),
    ("32.5 B", 32), ("0.3 K", 300), ("10m", 10_000_000),
])
def test_from_human_size(text: str, want: int) -> None:
    assert parse_size_decimal(text) == want


@pytest.mark.parametrize("text", ["", "hello", "-32", " 32 ", "32m b", "32bm"])
def test_from_human_size_errors(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_size_decimal(text)


@pytest.mark.parametrize(("size", "want"), [
    (1000, "1kB"), (1024, "1.024kB"), (1000000, "1MB"), (1048576, "1.049MB"),
    (2 * MB, "2MB"), (3.42 * 1000**3, "3.42GB"), (5.372 * 1000**4, "5.372TB"),
    (2.22 * PB, "2.22PB"), (10000000000000 * PB, "1e+04YB"), (0, "0B"), (999, "999B"),
    (999999, "1000kB"),
])
def test_human_size(size: float, want: str) -> None:
    assert human_size(size) == want


def test_human_size_precision_three() -> None:
    assert human_size(77_912_345, 3) == "77.9MB"
    assert human_size(4_261_000, 3) == "4.26MB"
    assert human_size(0, 3) == "0B"


@pytest.mark.parametrize(("size", "want"), [
    (1024, "1KiB"), (1024 * 1024, "1MiB"), (1048576, "1MiB"), (2 * MIB, "2MiB"),
    (3.42 * GIB, "3.42GiB"), (5.372 * TIB, "5.372TiB"), (2.22 * PIB, "2.22PiB"),
    (KIB**5 * PIB, "1.049e+06YiB"), (512, "512B"),
])
def test_bytes_size(size: float, want: str) -> None:
    assert bytes_size(size) == want


@pytest.mark.parametrize(("text", "want"), [
    ("1.5", 1_500_000_000), ("1", 1_000_000_000), ("0.01", 10_000_000), ("0", 0),
    (".5", 500_000_000), ("3/2", 1_500_000_000), ("2e-1", 200_000_000),
    ("0.000000001", 1),
])
def test_parse_cpus(text: str, want: int) -> None:
    assert parse_cpus(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("abc", 'invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational '
            'number'),
    ("", 'invalid argument "" for "--cpus" flag: failed to parse  as a rational number'),
    ("1.0000000001", 'invalid argument "1.0000000001" for "--cpus" flag: value is too '
                     'precise'),
    ("1/0", 'invalid argument "1/0" for "--cpus" flag: failed to parse 1/0 as a rational '
            'number'),
])
def test_parse_cpus_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_cpus(text)
    assert str(exc.value) == message


def test_negative_cpus_get_the_daemon_range_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units, "_available_cpus", lambda: 8)
    with pytest.raises(InvalidArgument) as exc:
        parse_cpus("-1")
    assert str(exc.value) == ("Range of CPUs is from 0.01 to 8.00, as there are only 8 CPUs "
                              "available")
    validate_nano_cpus(8_000_000_000, 8)
    with pytest.raises(InvalidArgument):
        validate_nano_cpus(8_000_000_001, 8)


NS = 1
US = 1000 * NS
MS = 1000 * US
S = 1000 * MS
M = 60 * S
H = 60 * M


# Go's time_test.go parseDurationTests
@pytest.mark.parametrize(("text", "want"), [
    ("0", 0), ("5s", 5 * S), ("30s", 30 * S), ("1478s", 1478 * S), ("-5s", -5 * S),
    ("+5s", 5 * S), ("-0", 0), ("+0", 0), ("5.0s", 5 * S), ("5.6s", 5 * S + 600 * MS),
    ("5.s", 5 * S), (".5s", 500 * MS), ("1.0s", 1 * S), ("1.00s", 1 * S),
    ("1.004s", 1 * S + 4 * MS), ("1.0040s", 1 * S + 4 * MS), ("100.00100s", 100 * S + 1 * MS),
    ("10ns", 10 * NS), ("11us", 11 * US), ("12µs", 12 * US), ("12μs", 12 * US),
    ("13ms", 13 * MS), ("14s", 14 * S), ("15m", 15 * M), ("16h", 16 * H),
    ("3h30m", 3 * H + 30 * M), ("10.5s4m", 4 * M + 10 * S + 500 * MS),
    ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)), ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS +
                                               5 * US + 6 * NS),
    ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
    ("52763797000ns", 52763797000 * NS), ("0.3333333333333333333h", 20 * M),
    ("9007199254740993ns", (1 << 53) + 1), ("9223372036854775807ns", (1 << 63) - 1),
    ("-9223372036854775808ns", -(1 << 63)), ("0.100000000000000000000h", 6 * M),
    ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS), ("1.5h", 90 * M),
    ("300ms", 300 * MS),
])
def test_parse_duration(text: str, want: int) -> None:
    assert parse_duration_ns(text) == want
    assert parse_duration(text) == pytest.approx(want / 1e9)


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'), ("3", 'time: missing unit in duration "3"'),
    ("10", 'time: missing unit in duration "10"'), ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'), (".", 'time: invalid duration "."'),
    ("-.", 'time: invalid duration "-."'), (".s", 'time: invalid duration ".s"'),
    ("+.s", 'time: invalid duration "+.s"'), ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1 s", 'time: unknown unit " s" in duration "1 s"'),
    ("\x85\x85", 'time: invalid duration "\\xc2\\x85\\xc2\\x85"'),
    ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("2µ", 'time: unknown unit "\\xc2\\xb5" in duration "2\\xc2\\xb5"'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_duration(text)
    assert str(exc.value) == message


# go-units ulimit_test.go
@pytest.mark.parametrize(("text", "want"), [
    ("nofile=512:1024", ("nofile", 512, 1024)), ("nofile=1024", ("nofile", 1024, 1024)),
    ("nproc=512", ("nproc", 512, 512)), ("core=-1", ("core", -1, -1)),
    ("nofile=512:-1", ("nofile", 512, -1)), ("memlock=infinity", ("memlock", -1, -1)),
    ("memlock=1024:infinity", ("memlock", 1024, -1)), ("nofile=-1:-1", ("nofile", -1, -1)),
])
def test_parse_ulimit(text: str, want: tuple[str, int, int]) -> None:
    assert parse_ulimit(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("notarealtype=1024:1024", "invalid ulimit type: notarealtype"),
    ("nofile", "invalid ulimit argument: nofile"),
    ("nofile=1024:", 'strconv.ParseInt: parsing "": invalid syntax'),
    ("nofile=notanumber", 'strconv.ParseInt: parsing "notanumber": invalid syntax'),
    ("nofile=1024:notanumber", 'strconv.ParseInt: parsing "notanumber": invalid syntax'),
    ("nofile=1024:1024:1024",
     "too many limit value arguments - 1024:1024:1024, can only have up to two, "
     "`soft[:hard]`"),
    ("nofile=1024:512", "ulimit soft limit must be less than or equal to hard limit: "
                        "1024 > 512"),
    ("nofile=-1:1024", "ulimit soft limit must be less than or equal to hard limit: "
                       "soft: -1 (unlimited), hard: 1024"),
    ("nofile=99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": '
                                    'value out of range'),
    ("as=1024", "invalid ulimit type: as"),
])
def test_parse_ulimit_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_ulimit(text)
    assert str(exc.value) == message


def test_ulimit_names_match_docker() -> None:
    docker = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
              "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}
    assert docker == units.ULIMITS


RATE_HELP = ("The correct format is <device-path>:<number>[<unit>]. Number must be a "
             "positive integer. Unit is optional and can be kb, mb, or gb")


def test_device_rate() -> None:
    assert parse_device_rate("/dev/sda:1mb") == ("/dev/sda", MIB)
    assert parse_device_rate("/dev/sda:1024") == ("/dev/sda", 1024)
    assert parse_device_rate("/dev/disk/by-id/x:10k") == ("/dev/disk/by-id/x", 10 * KIB)
    cases = {"/dev/sda": "bad format: /dev/sda", ":1mb": "bad format: :1mb",
             "sda:1mb": "bad format for device path: sda:1mb",
             "/dev/sda:1q": f"invalid rate for device: /dev/sda:1q. {RATE_HELP}",
             "/dev/sda:-1": f"invalid rate for device: /dev/sda:-1. {RATE_HELP}"}
    for text, message in cases.items():
        with pytest.raises(InvalidArgument) as exc:
            parse_device_rate(text)
        assert str(exc.value) == message


def test_device_iops_and_weight() -> None:
    assert parse_device_iops("/dev/sda:1000") == ("/dev/sda", 1000)
    for bad in ("/dev/sda:1k", "/dev/sda:-5", "/dev/sda:+5", "/dev/sda:"):
        with pytest.raises(InvalidArgument) as exc:
            parse_device_iops(bad)
        assert str(exc.value) == (f"invalid rate for device: {bad}. The correct format is "
                                  "<device-path>:<number>. Number must be a positive integer")
    assert parse_device_weight("/dev/sda:200") == ("/dev/sda", 200)
    assert parse_device_weight("/dev/sda:0") == ("/dev/sda", 0)
    for bad in ("/dev/sda:5", "/dev/sda:1001", "/dev/sda:x", "/dev/sda:70000"):
        with pytest.raises(InvalidArgument) as exc:
            parse_device_weight(bad)
        assert str(exc.value) == f"invalid weight for device: {bad}"


def test_go_quote_matches_strconv() -> None:
    assert units.go_quote('a"b\\c\n\t') == '"a\\"b\\\\c\\n\\t"'
    assert units.go_quote("é\x01") == '"é\\x01"'
