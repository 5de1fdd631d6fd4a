"""go-units HumanDuration, docker's State.String(), RFC 3339 and GetTimestamp."""

from __future__ import annotations

import time

import pytest

from sdk._internal.timefmt import (
    human_ago,
    human_duration,
    now_rfc3339nano,
    parse_rfc3339,
    parse_timestamp,
    rfc3339nano,
    rfc3339nano_fixed,
    rfc3339nano_ns,
    status_text,
)
from sdk.errors import InvalidArgument

S, MIN, HOUR = 1, 60, 3600
DAY, WEEK, MONTH, YEAR = 24 * HOUR, 7 * 24 * HOUR, 30 * 24 * HOUR, 365 * 24 * HOUR


# go-units duration_test.go TestHumanDuration
@pytest.mark.parametrize(("seconds", "want"), [
    (0.45, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (46, "46 seconds"),
    (59, "59 seconds"), (60, "About a minute"), (1 * MIN, "About a minute"),
    (3 * MIN, "3 minutes"), (35 * MIN, "35 minutes"), (35 * MIN + 40, "35 minutes"),
    (45 * MIN, "45 minutes"), (45 * MIN + 40, "45 minutes"), (46 * MIN, "46 minutes"),
    (59 * MIN, "59 minutes"), (1 * HOUR, "About an hour"),
    (1 * HOUR + 29 * MIN, "About an hour"), (1 * HOUR + 31 * MIN, "2 hours"),
    (1 * HOUR + 59 * MIN, "2 hours"), (3 * HOUR, "3 hours"),
    (3 * HOUR + 29 * MIN, "3 hours"), (3 * HOUR + 31 * MIN, "4 hours"),
    (3 * HOUR + 59 * MIN, "4 hours"), (3 * HOUR + 60 * MIN, "4 hours"),
    (24 * HOUR, "24 hours"), (1 * DAY + 12 * HOUR, "36 hours"), (2 * DAY, "2 days"),
    (7 * DAY, "7 days"), (13 * DAY + 5 * HOUR, "13 days"), (2 * WEEK, "2 weeks"),
    (2 * WEEK + 4 * DAY, "2 weeks"), (3 * WEEK, "3 weeks"), (4 * WEEK, "4 weeks"),
    (4 * WEEK + 3 * DAY, "4 weeks"), (1 * MONTH, "4 weeks"),
    (1 * MONTH + 2 * WEEK, "6 weeks"), (2 * MONTH, "2 months"),
    (2 * MONTH + 2 * WEEK, "2 months"), (3 * MONTH, "3 months"),
    (3 * MONTH + 1 * WEEK, "3 months"), (5 * MONTH + 2 * WEEK, "5 months"),
    (13 * MONTH, "13 months"), (23 * MONTH, "23 months"), (24 * MONTH, "24 months"),
    (24 * MONTH + 2 * WEEK, "2 years"), (3 * YEAR + 2 * MONTH, "3 years"),
    (-5, "Less than a second"), (0.999, "Less than a second"), (47, "47 seconds"),
    (1.9, "1 second"), (119.9, "About a minute"),
])
def test_human_duration(seconds: float, want: str) -> None:
    assert human_duration(seconds) == want


def test_human_ago() -> None:
    assert human_ago(3 * MIN) == "3 minutes ago"


NOW = 1_800_000_000.0


def iso(ts: float) -> str:
    return rfc3339nano(ts)


@pytest.mark.parametrize(("state", "want"), [
    ({"Status": "running", "Running": True, "StartedAt": iso(NOW - 180)}, "Up 3 minutes"),
    ({"Status": "paused", "Running": True, "Paused": True, "StartedAt": iso(NOW - 180)},
     "Up 3 minutes (Paused)"),
    ({"Status": "running", "StartedAt": iso(NOW - 2), "Health": {"Status": "healthy"}},
     "Up 2 seconds (healthy)"),
    ({"Status": "running", "StartedAt": iso(NOW - 2), "Health": {"Status": "unhealthy"}},
     "Up 2 seconds (unhealthy)"),
    ({"Status": "running", "StartedAt": iso(NOW - 2), "Health": {"Status": "starting"}},
     "Up 2 seconds (health: starting)"),
    ({"Status": "exited", "ExitCode": 0, "StartedAt": iso(NOW - 60),
      "FinishedAt": iso(NOW - 5)}, "Exited (0) 5 seconds ago"),
    ({"Status": "exited", "ExitCode": 137, "StartedAt": iso(NOW - 9000),
      "FinishedAt": iso(NOW - 7200)}, "Exited (137) 2 hours ago"),
    ({"Status": "created", "StartedAt": "0001-01-01T00:00:00Z",
      "FinishedAt": "0001-01-01T00:00:00Z"}, "Created"),
    ({"Status": "restarting", "Running": True, "Restarting": True, "ExitCode": 1,
      "StartedAt": iso(NOW - 10), "FinishedAt": iso(NOW - 2)}, "Restarting (1) 2 seconds ago"),
    ({"Status": "dead", "StartedAt": iso(NOW - 10)}, "Dead"),
    ({"Status": "removing", "StartedAt": iso(NOW - 10)}, "Removal In Progress"),
    ({"Running": True, "StartedAt": NOW - 3600}, "Up About an hour"),
    ({"Running": False, "StartedAt": "0001-01-01T00:00:00Z"}, "Created"),
    ({"Running": False, "StartedAt": iso(NOW - 10), "FinishedAt": ""}, ""),
    ({"Running": False, "ExitCode": 2, "StartedAt": iso(NOW - 10),
      "FinishedAt": "2026-10-15T09:00:00+01:00"}, "Exited (2) 3 months ago"),
])
def test_status_text(state: dict[str, object], want: str) -> None:
    assert status_text(state, NOW) == want


@pytest.mark.parametrize(("ts", "want"), [
    (0, "1970-01-01T00:00:00Z"), (1700000000, "2023-11-14T22:13:20Z"),
    (1700000000.5, "2023-11-14T22:13:20.5Z"), (1700000000.123456, "2023-11-14T22:13:20.123456Z"),
    (1700000000.1, "2023-11-14T22:13:20.1Z"), (-62135596800, "0001-01-01T00:00:00Z"),
])
def test_rfc3339nano(ts: float, want: str) -> None:
    assert rfc3339nano(ts) == want


def test_rfc3339nano_ns_and_fixed() -> None:
    assert rfc3339nano_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339nano_ns(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339nano_ns(1_700_000_000_000_000_000, fixed=True) == \
        "2023-11-14T22:13:20.000000000Z"
    assert rfc3339nano_fixed(1700000000.5) == "2023-11-14T22:13:20.500000000Z"
    assert now_rfc3339nano().endswith("Z")


@pytest.mark.parametrize(("text", "want"), [
    ("2023-11-14T22:13:20Z", 1700000000.0), ("2023-11-14T22:13:20.5Z", 1700000000.5),
    ("2023-11-14T23:13:20+01:00", 1700000000.0), ("2023-11-14T21:13:20-01:00", 1700000000.0),
    ("2023-11-14T22:13:20.123456789Z", 1700000000.123456789),
    ("2024-02-29T00:00:00Z", 1709164800.0), ("1970-01-01T00:00:00Z", 0.0),
])
def test_parse_rfc3339(text: str, want: float) -> None:
    assert parse_rfc3339(text) == pytest.approx(want)


@pytest.mark.parametrize(("text", "message"), [
    ("2023-02-29T00:00:00Z", 'parsing time "2023-02-29T00:00:00Z": day out of range'),
    ("2023-13-01T00:00:00Z", 'parsing time "2023-13-01T00:00:00Z": month out of range'),
    ("2023-01-01T25:00:00Z", 'parsing time "2023-01-01T25:00:00Z": hour out of range'),
    ("2023-01-01", 'parsing time "2023-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse '
                   '"" as "T"'),
    ("2023-01-01T00:00:00Zjunk", 'parsing time "2023-01-01T00:00:00Zjunk": extra text: '
                                 '"junk"'),
    ("x", 'parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"'),
])
def test_parse_rfc3339_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_rfc3339(text)
    assert str(exc.value) == message


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return time.mktime((y, mo, d, h, mi, s, 0, 0, -1))


def test_parse_timestamp_durations_and_unix() -> None:
    now = 1_700_000_000.75
    assert parse_timestamp("10m", now) == 1_700_000_000 - 600
    assert parse_timestamp("1h30m", now) == 1_700_000_000 - 5400
    assert parse_timestamp("-10s", now) == 1_700_000_010
    assert parse_timestamp("0", now) == 0.0
    assert parse_timestamp("1700000000", now) == 1700000000.0
    assert parse_timestamp("1700000000.123", now) == pytest.approx(1700000000.123)
    assert parse_timestamp("1700000000.5", now) == 1700000000.5


def test_parse_timestamp_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        now = 1_700_000_000.0
        assert parse_timestamp("2023-11-14", now) == local(2023, 11, 14)
        assert parse_timestamp("2023-11-14T22:13:20", now) == 1700000000.0
        assert parse_timestamp("2023-11-14T22", now) == 1699999200.0
        assert parse_timestamp("2023-11-14T22:13", now) == 1699999980.0
        assert parse_timestamp("2023-11-14T22:13:20.25", now) == 1700000000.25
        assert parse_timestamp("2023-11-14T22:13:20Z", now) == 1700000000.0
        assert parse_timestamp("2023-11-14T22:13:20.5Z", now) == 1700000000.5
        assert parse_timestamp("2023-11-14T23:13:20+01:00", now) == 1700000000.0
        assert parse_timestamp("2023-11-14T21:13:20-01:00", now) == 1700000000.0
        assert parse_timestamp("2023-11-14T23+01:00", now) == 1699999200.0
        assert parse_timestamp("2023-11-14Z", now) == 1699920000.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_parse_timestamp_uses_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Etc/GMT-2")      # UTC+2 all year
    time.tzset()
    try:
        assert parse_timestamp("2023-11-14T02:00:00", 1_700_000_000.0) == 1699920000.0
        assert parse_timestamp("2023-11-14T00:00:00Z", 1_700_000_000.0) == 1699920000.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(("text", "message"), [
    ("abc", 'failed to parse value as time or duration: "abc"'),
    ("10", None), ("2006-13-01", 'parsing time "2006-13-01": month out of range'),
    ("2023-11-14T", 'parsing time "2023-11-14T" as "2006-01-02T15": cannot parse "" as "15"'),
    ("-1", 'parsing time "-1" as "2006-01-02": cannot parse "-1" as "2006"'),
    ("1.2.3", 'failed to parse value as time or duration: "1.2.3"'),
])
def test_parse_timestamp_errors(text: str, message: str | None) -> None:
    if message is None:
        assert parse_timestamp(text, 0) == 10.0
        return
    with pytest.raises(InvalidArgument) as exc:
        parse_timestamp(text, 1_700_000_000)
    assert str(exc.value) == message


def test_parse_timestamp_flag_prefix() -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_timestamp("abc", 0, flag="since")
    assert str(exc.value) == ('invalid value for "since": failed to parse value as time or '
                              'duration: "abc"')
