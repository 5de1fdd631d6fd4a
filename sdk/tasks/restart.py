"""Restart policies with Docker's decisions and backoff (restartmanager)."""

from __future__ import annotations

from dataclasses import dataclass

from sdk.errors import InvalidArgument

NAMES = ("no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        name, sep, count = (text or "no").partition(":")
        if name not in NAMES:
            raise InvalidArgument(f"invalid restart policy: {text!r} (use no, always, "
                                  "unless-stopped or on-failure[:max-retries])")
        if sep:
            if name != "on-failure":
                raise InvalidArgument(f"maximum retry count cannot be used with restart "
                                      f"policy '{name}'")
            if not count.isdigit():
                raise InvalidArgument(f"invalid restart policy format: maximum retry count "
                                      f"must be a non-negative integer, got {count!r}")
        return cls(name, int(count) if sep else 0)

    def to_docker(self) -> dict[str, object]:
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}


def should_restart(policy: RestartPolicy, exit_code: int, restart_count: int,
                   stopped_by_user: bool) -> bool:
    if stopped_by_user or policy.name == "no":
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if exit_code == 0:
        return False
    return policy.maximum_retry_count == 0 or restart_count < policy.maximum_retry_count


class Backoff:
    """100 ms doubling to 1 min; reset once a run lasted at least 10 s."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= 10 or self.delay == 0:
            self.delay = 0.1
        else:
            self.delay = min(self.delay * 2, 60.0)
        return self.delay
