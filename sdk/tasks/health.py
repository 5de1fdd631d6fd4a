"""Health checks with Docker's semantics and defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdk.errors import InvalidArgument

NS = 1_000_000_000
MAX_LOG = 5
MAX_OUTPUT = 4096


@dataclass(frozen=True, slots=True)
class HealthConfig:
    test: list[str]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0

    @classmethod
    def from_docker(cls, d: dict[str, Any]) -> HealthConfig:
        test = d.get("Test") or []
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not test or test[0] not in ("NONE", "CMD", "CMD-SHELL"):
            raise InvalidArgument(f"invalid healthcheck test {test!r}: must start with "
                                  "NONE, CMD or CMD-SHELL")
        values = {}
        for key, name in (("Interval", "interval"), ("Timeout", "timeout"),
                          ("StartPeriod", "start_period"),
                          ("StartInterval", "start_interval")):
            raw = d.get(key) or 0
            if raw < 0:
                raise InvalidArgument(f"healthcheck {name} can't be negative")
            if raw and raw < 1_000_000:
                raise InvalidArgument(f"healthcheck {name} must be at least 1ms")
            if raw:
                values[name] = raw / NS
        retries = d.get("Retries") or 0
        if retries < 0:
            raise InvalidArgument("healthcheck retries can't be negative")
        if retries:
            values["retries"] = int(retries)
        return cls(list(test), **values)

    def to_docker(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": self.test}
        defaults = HealthConfig(self.test)
        for key, name in (("Interval", "interval"), ("Timeout", "timeout"),
                          ("StartPeriod", "start_period"),
                          ("StartInterval", "start_interval")):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                out[key] = int(value * NS)
        if self.retries != defaults.retries:
            out["Retries"] = self.retries
        return out


@dataclass
class HealthState:
    status: str = "starting"
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 3

    def record(self, start: str, end: str, exit_code: int, output: str,
               in_start_period: bool) -> None:
        self.log.append({"Start": start, "End": end, "ExitCode": exit_code,
                         "Output": output[:MAX_OUTPUT]})
        del self.log[:-MAX_LOG]
        if exit_code == 0:
            self.status = "healthy"
            self.failing_streak = 0
            return
        if in_start_period and self.status != "healthy":
            return
        self.failing_streak += 1
        if self.failing_streak >= self.retries:
            self.status = "unhealthy"

    def to_docker(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak,
                "Log": list(self.log)}
