"""Health checks: config mapping and validation, state transitions, probe timing."""

from __future__ import annotations

import pytest

from sdk.errors import InvalidArgument
from sdk.tasks.health import (
    MAX_OUTPUT,
    HealthConfig,
    HealthState,
    HealthStatus,
    cap_output,
    go_duration,
    health_from_flags,
    next_delay,
    parse_go_duration,
    timeout_output,
)

S = 1_000_000_000

# --------------------------------------------------------------------------- config


def test_defaults() -> None:
    cfg = HealthConfig(["CMD", "true"])
    assert (cfg.interval, cfg.timeout, cfg.retries, cfg.start_period, cfg.start_interval) \
        == (30, 30, 3, 0, 5)
    assert cfg.to_docker() == {"Test": ["CMD", "true"]}


def test_from_docker_round_trip() -> None:
    api = {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 10 * S,
           "Timeout": 2 * S, "Retries": 5, "StartPeriod": 60 * S, "StartInterval": S // 2}
    cfg = HealthConfig.from_docker(api)
    assert (cfg.interval, cfg.timeout, cfg.retries, cfg.start_period, cfg.start_interval) \
        == (10, 2, 5, 60, 0.5)
    assert cfg.to_docker() == api


def test_zero_means_default_and_is_not_shown() -> None:
    cfg = HealthConfig.from_docker({"Test": ["CMD", "x"], "Interval": 0, "Retries": 0})
    assert cfg.interval == 30 and cfg.retries == 3
    assert cfg.to_docker() == {"Test": ["CMD", "x"]}


def test_explicit_default_is_kept_like_docker_inspect() -> None:
    api = {"Test": ["CMD", "x"], "Interval": 30 * S, "Retries": 3}
    assert HealthConfig.from_docker(api).to_docker() == api


def test_string_test_is_cmd_shell() -> None:
    assert HealthConfig.from_docker({"Test": "pg_isready"}).test == ["CMD-SHELL", "pg_isready"]


def test_none_disables() -> None:
    cfg = HealthConfig.from_docker({"Test": ["NONE"]})
    assert cfg.disabled and cfg.to_docker() == {"Test": ["NONE"]}
    with pytest.raises(InvalidArgument, match="disabled"):
        cfg.probe_argv()


def test_probe_argv() -> None:
    assert HealthConfig(["CMD-SHELL", "exit 0"]).probe_argv() == ["/bin/sh", "-c", "exit 0"]
    assert HealthConfig(["CMD-SHELL", "x"]).probe_argv(["pwsh", "-c"]) == ["pwsh", "-c", "x"]
    assert HealthConfig(["CMD", "/bin/check", "-v"]).probe_argv() == ["/bin/check", "-v"]


@pytest.mark.parametrize("api, message", [
    ({"Test": ["CMD", "x"], "Interval": -1}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "Interval": 999_999},
     "Interval in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "Timeout": 10}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "StartPeriod": -S},
     "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "StartInterval": 5},
     "StartInterval in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ({"Test": ["CMD", "x"], "Retries": "3"}, "Retries in Healthcheck must be an integer"),
    ({"Test": ["CMD", "x"], "Interval": "30s"}, "must be a duration in nanoseconds"),
    ({"Test": ["CMD_SHELL", "x"]}, 'must start with "NONE", "CMD" or "CMD-SHELL"'),
    ({"Test": ["CMD"]}, "has no command after 'CMD'"),
    ({"Interval": S}, "Healthcheck has no Test"),
])
def test_validation(api: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        HealthConfig.from_docker(api)
    assert message in str(info.value)


def test_exactly_1ms_is_allowed() -> None:
    assert HealthConfig.from_docker({"Test": ["CMD", "x"], "Interval": 1_000_000}).interval \
        == 0.001


# --------------------------------------------------------------------------- flags


def test_flags_map_like_docker_cli() -> None:
    assert health_from_flags() is None
    assert health_from_flags(cmd="curl -f localhost") == {"Test": ["CMD-SHELL",
                                                                   "curl -f localhost"]}
    assert health_from_flags(no_healthcheck=True) == {"Test": ["NONE"]}
    assert health_from_flags(cmd="x", interval="1m30s", timeout=3, retries=2,
                             start_period="10s", start_interval="500ms") == {
        "Test": ["CMD-SHELL", "x"], "Interval": 90 * S, "Timeout": 3 * S,
        "StartPeriod": 10 * S, "StartInterval": S // 2, "Retries": 2}
    # timings without a command: the image's HEALTHCHECK command is kept
    assert health_from_flags(interval="5s") == {"Interval": 5 * S}


@pytest.mark.parametrize("kwargs, message", [
    ({"no_healthcheck": True, "cmd": "x"}, "--no-healthcheck conflicts with --health-* options"),
    ({"no_healthcheck": True, "retries": 2}, "--no-healthcheck conflicts"),
    ({"interval": "-1s"}, "--health-interval cannot be negative"),
    ({"timeout": -1}, "--health-timeout cannot be negative"),
    ({"start_period": "-5s"}, "--health-start-period cannot be negative"),
    ({"start_interval": "-1ms"}, "--health-start-interval cannot be negative"),
    ({"retries": -1}, "--health-retries cannot be negative"),
    ({"interval": "soon"}, 'invalid argument "soon" for "--health-interval" flag: '
                           'time: invalid duration "soon"'),
    ({"timeout": "5"}, 'time: missing unit in duration "5"'),
    ({"timeout": "5y"}, 'time: unknown unit "y" in duration "5y"'),
])
def test_flag_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        health_from_flags(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


# --------------------------------------------------------------------------- state


def _run(state: HealthState, results: list[tuple[int, bool]]) -> list[tuple[str, int]]:
    out = []
    for i, (code, in_start) in enumerate(results):
        state.record(f"s{i}", f"e{i}", code, "", in_start)
        out.append((str(state.status), state.failing_streak))
    return out


@pytest.mark.parametrize("results, expected", [
    # (exit code, within start period) -> (status, failing streak) after each probe
    ([(0, False)], [("healthy", 0)]),
    ([(1, False), (1, False), (1, False)],
     [("starting", 1), ("starting", 2), ("unhealthy", 3)]),
    ([(1, False), (1, False), (0, False), (1, False)],
     [("starting", 1), ("starting", 2), ("healthy", 0), ("healthy", 1)]),
    # failures in the start period don't count while starting...
    ([(1, True), (1, True), (1, True), (1, True), (1, False)],
     [("starting", 0)] * 4 + [("starting", 1)]),
    # ...but do once the container was healthy (docker only spares "starting")
    ([(0, True), (1, True), (1, True), (1, True)],
     [("healthy", 0), ("healthy", 1), ("healthy", 2), ("unhealthy", 3)]),
    ([(1, False), (1, False), (1, False), (1, True), (0, True)],
     [("starting", 1), ("starting", 2), ("unhealthy", 3), ("unhealthy", 4), ("healthy", 0)]),
    # any non-zero code (2 is "reserved", -1 a timeout) is a failure
    ([(2, False), (-1, False), (137, False)],
     [("starting", 1), ("starting", 2), ("unhealthy", 3)]),
])
def test_transitions(results: list[tuple[int, bool]], expected: list[tuple[str, int]]) -> None:
    assert _run(HealthState(), results) == expected


def test_retries_setting() -> None:
    assert _run(HealthState(retries=1), [(1, False)]) == [("unhealthy", 1)]
    assert _run(HealthState(retries=5), [(1, False)] * 5)[-2:] == [("starting", 4),
                                                                     ("unhealthy", 5)]


def test_record_reports_status_changes() -> None:
    state = HealthState()
    assert state.record("a", "b", 1, "", False) is False
    assert state.record("a", "b", 0, "", False) is True
    assert state.record("a", "b", 0, "", False) is False


def test_log_keeps_last_five() -> None:
    state = HealthState()
    for i in range(7):
        state.record(f"start{i}", f"end{i}", i, f"out{i}", False)
    assert [e["Output"] for e in state.log] == [f"out{i}" for i in range(2, 7)]


def test_to_docker_is_state_health() -> None:
    state = HealthState()
    assert state.to_docker() == {"Status": "starting", "FailingStreak": 0, "Log": []}
    state.record("2026-11-24T09:41:02.1Z", "2026-11-24T09:41:02.2Z", 1, "boom\n", False)
    assert state.to_docker() == {
        "Status": "starting", "FailingStreak": 1,
        "Log": [{"Start": "2026-11-24T09:41:02.1Z", "End": "2026-11-24T09:41:02.2Z",
                 "ExitCode": 1, "Output": "boom\n"}]}
    again = HealthState.from_docker(state.to_docker(), retries=3)
    assert again == state
    assert again.status is HealthStatus.STARTING


def test_output_is_capped_at_4096_bytes_with_dots() -> None:
    assert cap_output("x" * MAX_OUTPUT) == "x" * MAX_OUTPUT
    assert cap_output("x" * 5000) == "x" * MAX_OUTPUT + "..."
    assert cap_output(b"y" * 5000) == "y" * MAX_OUTPUT + "..."
    state = HealthState()
    state.record("a", "b", 0, "é" * 3000, False)           # 6000 bytes
    assert len(state.log[0]["Output"].encode()) <= MAX_OUTPUT + 3
    assert state.log[0]["Output"].endswith("...")


def test_timeout_result_like_docker() -> None:
    assert timeout_output(30) == "Health check exceeded timeout (30s)"
    assert timeout_output(1.5, "partial") == "Health check exceeded timeout (1.5s): partial"
    assert timeout_output(90) == "Health check exceeded timeout (1m30s)"
    state = HealthState()
    state.record_timeout("a", "b", 30, "", False)
    assert state.log[-1]["ExitCode"] == -1
    assert state.log[-1]["Output"] == "Health check exceeded timeout (30s)"
    assert state.failing_streak == 1


def test_restart_resets_status_but_keeps_the_log() -> None:
    state = HealthState()
    _run(state, [(1, False)] * 3)
    state.restarted()
    assert (state.status, state.failing_streak, len(state.log)) == ("starting", 0, 3)


# --------------------------------------------------------------------------- timing


def test_next_delay() -> None:
    cfg = HealthConfig(["CMD", "x"], interval=30, start_period=60, start_interval=5)
    starting = HealthState()
    assert next_delay(starting, cfg, now=110, started_at=100) == 5     # in the start period
    assert next_delay(starting, cfg, now=160, started_at=100) == 30    # start period over
    healthy = HealthState(status=HealthStatus.HEALTHY)
    assert next_delay(healthy, cfg, now=110, started_at=100) == 30     # no longer starting
    no_period = HealthConfig(["CMD", "x"])
    assert next_delay(starting, no_period, now=100, started_at=100) == 30


# --------------------------------------------------------------------------- Go durations


@pytest.mark.parametrize("text, ns", [
    ("0", 0), ("30s", 30 * S), ("1m30s", 90 * S), ("1.5h", 5400 * S), ("300ms", S * 3 // 10),
    ("1us", 1000), ("1µs", 1000), ("2ns", 2), ("-1s", -S), (".5s", S // 2), ("1h2m3s", 3723 * S),
])
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "s", "1", "1x", "1.2.3s", "--1s"])
def test_parse_go_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match="time: "):
        parse_go_duration(text)


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (30 * S, "30s"), (90 * S, "1m30s"), (3600 * S, "1h0m0s"), (S * 3 // 2, "1.5s"),
    (S // 2, "500ms"), (1500, "1.5µs"), (7, "7ns"), (-S, "-1s"), (61 * S + 1, "1m1.000000001s"),
])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text
