"""Restart policies with Docker's parsing, decisions and backoff (moby ``restartmanager``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sdk.errors import InvalidArgument


class PolicyName(StrEnum):
    NO = "no"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"
    ON_FAILURE = "on-failure"


NAMES = tuple(str(n) for n in PolicyName)

BACKOFF_START = 0.1          # defaultTimeout: 100 ms
BACKOFF_MAX = 60.0           # maxRestartTimeout: 1 min
BACKOFF_RESET_AFTER = 10.0   # a run at least this long resets the backoff


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: PolicyName = PolicyName.NO
    maximum_retry_count: int = 0

    def __post_init__(self) -> None:
        try:
            name = PolicyName(self.name or "no")
        except ValueError:
            raise InvalidArgument(
                f"invalid restart policy '{self.name}': use one of 'no', 'always', "
                "'unless-stopped' or 'on-failure[:max-retries]'") from None
        object.__setattr__(self, "name", name)
        count = self.maximum_retry_count
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidArgument(f"invalid restart policy format: maximum retry count must "
                                  f"be an integer, got {count!r}")
        if count and name != PolicyName.ON_FAILURE:
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy "
                                  f"'{name}'")
        if count < 0:
            raise InvalidArgument("maximum retry count cannot be negative")

    @classmethod
    def parse(cls, text: str | None) -> RestartPolicy:
        """``--restart`` syntax: ``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``."""
        if not text:
            return cls()
        parts = text.split(":")
        if len(parts) > 2:
            raise InvalidArgument(f"invalid restart policy format: {text!r} (use "
                                  "on-failure:N for a maximum retry count)")
        count = 0
        if len(parts) == 2:
            if not parts[0]:
                raise InvalidArgument("invalid restart policy format: no policy provided "
                                      "before colon")
            if parts[1] == "":
                raise InvalidArgument("maximum retry count cannot be empty")
            if not re.fullmatch(r"[+-]?[0-9]+", parts[1]):     # Go's strconv.Atoi
                raise InvalidArgument(f"invalid restart policy format: maximum retry count "
                                      f"must be an integer, got {parts[1]!r}")
            count = int(parts[1])
        return cls(parts[0], count)  # type: ignore[arg-type] # validated in __post_init__

    @classmethod
    def from_docker(cls, d: Mapping[str, Any] | None) -> RestartPolicy:
        """From the API's ``{"Name": ..., "MaximumRetryCount": ...}`` ("" means "no")."""
        if not d:
            return cls()
        return cls(d.get("Name") or "no",  # type: ignore[arg-type]
                   d.get("MaximumRetryCount") or 0)

    def to_docker(self) -> dict[str, object]:
        return {"Name": str(self.name), "MaximumRetryCount": self.maximum_retry_count}

    def __str__(self) -> str:
        if self.name == PolicyName.ON_FAILURE and self.maximum_retry_count:
            return f"on-failure:{self.maximum_retry_count}"
        return str(self.name)

    @property
    def is_none(self) -> bool:
        return self.name == PolicyName.NO


def check_auto_remove(policy: RestartPolicy, auto_remove: bool) -> None:
    """``--rm`` and a restart policy exclude each other (docker CLI's message)."""
    if auto_remove and not policy.is_none:
        raise InvalidArgument("Conflicting options: --restart and --rm")


def should_restart(policy: RestartPolicy, exit_code: int, restart_count: int,
                   stopped_by_user: bool, has_been_manually_stopped: bool = False) -> bool:
    """Whether to restart a container that just exited (``RestartManager.ShouldRestart``).

    ``stopped_by_user``: this exit was caused by ``stop``/``kill`` (or the engine shutting
    down): docker cancels the restart manager, so no policy restarts it.
    ``has_been_manually_stopped``: the persisted flag; it only matters to
    ``unless-stopped`` (e.g. when the engine decides what to start again at boot).
    ``restart_count`` is how many times it was already restarted.
    """
    if stopped_by_user or policy.is_none:
        return False
    if policy.name == PolicyName.ALWAYS:
        return True
    if policy.name == PolicyName.UNLESS_STOPPED:
        return not has_been_manually_stopped
    limit = policy.maximum_retry_count
    return exit_code != 0 and (limit == 0 or restart_count < limit)


class Backoff:
    """Delay before each restart: 100 ms, doubling, capped at 1 min; back to 100 ms once a
    run lasted at least 10 s.  Advanced on every exit, as docker does, even when the
    container is then not restarted."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next_delay(self, ran_for: float) -> float:
        """The delay before restarting a container that ran for ``ran_for`` seconds."""
        if ran_for >= BACKOFF_RESET_AFTER:
            self.delay = 0.0
        if self.delay == 0:
            self.delay = BACKOFF_START
        elif self.delay < BACKOFF_MAX:
            self.delay *= 2
        self.delay = min(self.delay, BACKOFF_MAX)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


__all__ = ["PolicyName", "RestartPolicy", "should_restart", "check_auto_remove", "Backoff",
           "NAMES"]
