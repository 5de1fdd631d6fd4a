"""Health checks with Docker's semantics (moby ``daemon/health.go``).

The config side mirrors the API's ``HealthConfig`` (durations in nanoseconds, 0 meaning
"the default"); the state side is what ``docker inspect`` shows as ``.State.Health``.
Probing itself (an exec in the container) is :mod:`sdk.tasks.healthrun`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sdk.errors import InvalidArgument

NS = 1_000_000_000
MAX_LOG = 5                  # maxLogEntries
MAX_OUTPUT = 4096            # maxOutputLen: longer output is cut and gets "..."
MIN_DURATION = 0.001         # containertypes.MinimumDuration (1ms)
TIMEOUT_EXIT_CODE = -1       # what docker records when a probe times out

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0

TEST_KINDS = ("NONE", "CMD", "CMD-SHELL")


class HealthStatus(StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


# (API key, attribute, default) of the duration settings, in docker's validation order
_DURATIONS = (("Interval", "interval", DEFAULT_INTERVAL),
              ("Timeout", "timeout", DEFAULT_TIMEOUT),
              ("StartPeriod", "start_period", DEFAULT_START_PERIOD),
              ("StartInterval", "start_interval", DEFAULT_START_INTERVAL))


@dataclass(frozen=True)
class HealthConfig:
    """Effective health check settings, in seconds.

    ``test`` is ``["NONE"]``, ``["CMD", arg...]`` or ``["CMD-SHELL", command]``.  Zero
    durations (and zero retries) mean "docker's default", as in the API.  ``explicit``
    remembers which API keys were given, so :meth:`to_docker` shows what the user set
    (``docker inspect`` shows an explicit ``--health-interval 30s`` even though it is the
    default).
    """

    test: list[str]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    start_period: float = DEFAULT_START_PERIOD
    start_interval: float = DEFAULT_START_INTERVAL
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.test, str) or not isinstance(self.test, list | tuple) or \
                not all(isinstance(t, str) for t in self.test):
            raise InvalidArgument(f"Healthcheck Test must be a list of strings, got "
                                  f"{self.test!r}")
        object.__setattr__(self, "test", list(self.test))
        if not self.test or self.test[0] not in TEST_KINDS:
            raise InvalidArgument(
                f"invalid Healthcheck Test {self.test!r}: it must start with \"NONE\", "
                "\"CMD\" or \"CMD-SHELL\" (e.g. [\"CMD-SHELL\", \"curl -f http://localhost/\"])")
        if self.test[0] != "NONE" and len(self.test) < 2:
            raise InvalidArgument(f"Healthcheck Test {self.test!r} has no command after "
                                  f"{self.test[0]!r}")
        for key, attr, default in _DURATIONS:
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgument(f"{key} in Healthcheck must be a duration, got {value!r}")
            if value != 0 and value < MIN_DURATION:
                raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
            if value == 0:
                object.__setattr__(self, attr, default)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise InvalidArgument(f"Retries in Healthcheck must be an integer, got "
                                  f"{self.retries!r}")
        if self.retries < 0:
            raise InvalidArgument("Retries in Healthcheck cannot be negative")
        if self.retries == 0:
            object.__setattr__(self, "retries", DEFAULT_RETRIES)

    @property
    def disabled(self) -> bool:
        """``NONE``: the image's HEALTHCHECK is switched off."""
        return self.test[0] == "NONE"

    def probe_argv(self, shell: list[str] | None = None) -> list[str]:
        """The command a probe execs (CMD-SHELL runs through the container's shell)."""
        if self.disabled:
            raise InvalidArgument("health check is disabled (NONE): there is nothing to run")
        if self.test[0] == "CMD-SHELL":
            return [*(shell or ["/bin/sh", "-c"]), *self.test[1:]]
        return list(self.test[1:])

    @classmethod
    def from_docker(cls, d: Mapping[str, Any]) -> HealthConfig:
        """From the API's ``Healthcheck`` (durations in ns; a string Test is CMD-SHELL)."""
        test = d.get("Test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not test:
            raise InvalidArgument("Healthcheck has no Test: give [\"CMD\", ...], "
                                  "[\"CMD-SHELL\", \"command\"] or [\"NONE\"]")
        values: dict[str, Any] = {}
        explicit = set()
        for key, attr, _default in _DURATIONS:
            raw = d.get(key)
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise InvalidArgument(f"{key} in Healthcheck must be a duration in "
                                      f"nanoseconds, got {raw!r}")
            if raw:
                explicit.add(key)
            values[attr] = raw / NS
        retries = d.get("Retries")
        if retries is not None:
            if isinstance(retries, bool) or not isinstance(retries, int):
                raise InvalidArgument(f"Retries in Healthcheck must be an integer, got "
                                      f"{retries!r}")
            if retries:
                explicit.add("Retries")
            values["retries"] = retries
        return cls(list(test), **values, explicit=frozenset(explicit))

    def to_docker(self) -> dict[str, Any]:
        """The API's ``Healthcheck``: Test, then the settings given or not the default."""
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, attr, default in _DURATIONS:
            value = getattr(self, attr)
            if key in self.explicit or value != default:
                out[key] = round(value * NS)
        if "Retries" in self.explicit or self.retries != DEFAULT_RETRIES:
            out["Retries"] = self.retries
        return out


def health_from_flags(*, cmd: str | None = None, interval: float | str | None = None,
                      timeout: float | str | None = None, retries: int | None = None,
                      start_period: float | str | None = None,
                      start_interval: float | str | None = None,
                      no_healthcheck: bool = False) -> dict[str, Any] | None:
    """The API ``Healthcheck`` for ``docker run``'s ``--health-*`` flags, like docker's CLI.

    Durations are seconds or Go duration strings ("30s", "1m30s").  The result may have no
    ``Test`` (only timings given): the daemon then keeps the image's HEALTHCHECK command.
    None means "no flags": use the image's settings unchanged.
    """
    flags = {"interval": interval, "timeout": timeout, "start-period": start_period,
             "start-interval": start_interval}
    seconds = {name: _flag_seconds(name, v) for name, v in flags.items() if v is not None}
    for name, value in seconds.items():
        if value < 0:
            raise InvalidArgument(f"--health-{name} cannot be negative")
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    have = bool(cmd) or any(seconds.values()) or bool(retries)
    if no_healthcheck:
        if have:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    out: dict[str, Any] = {}
    if cmd:
        out["Test"] = ["CMD-SHELL", cmd]
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"),
                      ("StartPeriod", "start-period"), ("StartInterval", "start-interval")):
        if seconds.get(name):
            out[key] = round(seconds[name] * NS)
    if retries:
        out["Retries"] = retries
    return out


def _flag_seconds(name: str, value: float | str) -> float:
    if isinstance(value, str):
        try:
            return parse_go_duration(value) / NS
        except ValueError as exc:
            raise InvalidArgument(f'invalid argument "{value}" for "--health-{name}" flag: '
                                  f"{exc}") from None
    return float(value)


# --------------------------------------------------------------------------- state


@dataclass
class HealthState:
    """``.State.Health``: status, failing streak and the last 5 probe results."""

    status: HealthStatus = HealthStatus.STARTING
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    retries: int = DEFAULT_RETRIES

    def record(self, start: str, end: str, exit_code: int, output: str | bytes,
               in_start_period: bool) -> bool:
        """Add a probe result (handleProbeResult); True when the status changed.

        ``in_start_period``: the probe *started* within the start period after the
        container started.  Failures then don't count while the status is still
        "starting" (once healthy or unhealthy, they do).
        """
        old = self.status
        self.log.append({"Start": start, "End": end, "ExitCode": exit_code,
                         "Output": cap_output(output)})
        del self.log[:-MAX_LOG]
        if exit_code == 0:
            self.failing_streak = 0
            self.status = HealthStatus.HEALTHY
        elif not (in_start_period and self.status == HealthStatus.STARTING):
            self.failing_streak += 1
            if self.failing_streak >= max(self.retries, 1):
                self.status = HealthStatus.UNHEALTHY
        return self.status != old

    def record_timeout(self, start: str, end: str, timeout: float, output: str | bytes,
                       in_start_period: bool) -> bool:
        """A probe killed after ``timeout`` seconds: exit code -1, docker's message."""
        return self.record(start, end, TIMEOUT_EXIT_CODE, timeout_output(timeout, output),
                           in_start_period)

    def restarted(self) -> None:
        """The container (re)started: "starting" again, streak reset, log kept."""
        self.status = HealthStatus.STARTING
        self.failing_streak = 0

    def to_docker(self) -> dict[str, Any]:
        return {"Status": str(self.status), "FailingStreak": self.failing_streak,
                "Log": [dict(entry) for entry in self.log]}

    @classmethod
    def from_docker(cls, d: Mapping[str, Any] | None, retries: int = DEFAULT_RETRIES
                    ) -> HealthState:
        if not d:
            return cls(retries=retries)
        try:
            status = HealthStatus(d.get("Status") or "starting")
        except ValueError:
            status = HealthStatus.STARTING
        return cls(status, int(d.get("FailingStreak") or 0),
                   [dict(e) for e in (d.get("Log") or [])][-MAX_LOG:], retries)


def cap_output(output: str | bytes) -> str:
    """The first 4096 bytes of a probe's output, with "..." when more was dropped."""
    raw = output.encode("utf-8", "surrogateescape") if isinstance(output, str) else output
    if len(raw) <= MAX_OUTPUT:
        return raw.decode("utf-8", "replace")
    return raw[:MAX_OUTPUT].decode("utf-8", "replace") + "..."


def timeout_output(timeout: float, output: str | bytes = "") -> str:
    """``Health check exceeded timeout (30s)``, plus ``: <output>`` when there was some."""
    msg = f"Health check exceeded timeout ({go_duration(round(timeout * NS))})"
    text = cap_output(output) if output else ""
    return f"{msg}: {text}" if text else msg


def next_delay(state: HealthState, cfg: HealthConfig, now: float, started_at: float) -> float:
    """Seconds until the next probe: start_interval while starting within the start
    period, else interval (moby's ``getInterval``)."""
    if now - started_at < cfg.start_period and state.status == HealthStatus.STARTING:
        return cfg.start_interval
    return cfg.interval


# --------------------------------------------------------------------------- Go durations

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": NS, "m": 60 * NS, "h": 3600 * NS}
_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds ("1m30s", "1.5h", "300ms")."""
    s = text
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    while s:
        m = _PART.match(s)
        assert m is not None
        whole, frac, unit = m.groups()
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _UNITS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        s = s[m.end():]
    return sign * total


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: 30s, 1m30s, 1h0m0s, 1.5s, 500ms, 0s."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < NS:
        for scale, unit in ((1_000_000, "ms"), (1_000, "\u00b5s"), (1, "ns")):
            if u >= scale:
                return sign + _decimal(u, scale) + unit
    hours, rest = divmod(u, 3600 * NS)
    minutes, rest = divmod(rest, 60 * NS)
    text = _decimal(rest, NS) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, scale: int) -> str:
    whole, frac = divmod(value, scale)
    digits = f"{frac:0{len(str(scale)) - 1}d}".rstrip("0") if scale > 1 else ""
    return f"{whole}.{digits}" if digits else str(whole)


__all__ = ["HealthConfig", "HealthState", "HealthStatus", "health_from_flags", "next_delay",
           "cap_output", "timeout_output", "parse_go_duration", "go_duration", "MAX_LOG",
           "MAX_OUTPUT", "TIMEOUT_EXIT_CODE"]
