"""Per-repository permissions: ``auth.access`` maps users to repository patterns and actions.

    auth:
      htpasswd: {path: /etc/berth-registry/htpasswd}
      access:
        alice: {"**": ["*"]}                    # everything
        bob:   {"team/*": [pull], "bob/**": [pull, push, delete]}
        "*":   {"{user}/**": [pull, push]}      # every user: their own namespace

Patterns: ``*`` matches within one path component, ``**`` across components, ``{user}``
is the authenticated user's name; anything else is literal.  The user ``"*"`` stands for
every authenticated user; a user's actions on a repository are the union over all their
matching rules and those of ``"*"``.  Actions: pull, push, delete, or ``*`` for all three.
Without ``auth.access`` every authenticated user may do everything (distribution's
htpasswd behaviour).  Anonymous access stays governed by ``auth.anonymous``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sdk.errors import ConfigError

ACTIONS = frozenset({"pull", "push", "delete"})
ANY_USER = "*"
_PATTERN_CHARS = re.compile(r"^(?:[a-z0-9._/*-]|\{user\})+$")


@dataclass(frozen=True)
class Rule:
    pattern: str
    actions: frozenset[str]

    def matches(self, user: str, name: str) -> bool:
        return _compile(self.pattern, user).fullmatch(name) is not None


@lru_cache(maxsize=4096)
def _compile(pattern: str, user: str) -> re.Pattern[str]:
    out = []
    for token in re.split(r"(\*\*|\*|\{user\})", pattern):
        if token == "**":
            out.append(".*")
        elif token == "*":
            out.append("[^/]*")
        elif token == "{user}":
            out.append(re.escape(user))
        else:
            out.append(re.escape(token))
    return re.compile("".join(out))


@dataclass
class AccessMap:
    rules: dict[str, list[Rule]] = field(default_factory=dict)

    def actions(self, user: str, name: str) -> set[str]:
        granted: set[str] = set()
        for who in (user, ANY_USER):
            for rule in self.rules.get(who, []):
                if rule.matches(user, name):
                    granted |= rule.actions
        return granted

    def allows(self, user: str, name: str, actions: set[str]) -> bool:
        want = ACTIONS if "*" in actions else actions
        return bool(want) and want <= self.actions(user, name)

    def users(self) -> set[str]:
        return set(self.rules) - {ANY_USER}


def parse_access(data: Any, key: str = "auth.access") -> AccessMap:
    """Validate the raw ``auth.access`` mapping; one ConfigError naming the bad entry."""
    if not isinstance(data, dict):
        raise ConfigError(f"registry config: {key}: expected a mapping of users to "
                          f"{{repository pattern: [actions]}}, got {data!r}")
    amap = AccessMap()
    for user, patterns in data.items():
        where = f"{key}.{user}"
        if not isinstance(user, str) or not user or ":" in user:
            raise ConfigError(f"registry config: {key}: invalid user name {user!r}")
        if not isinstance(patterns, dict):
            raise ConfigError(f"registry config: {where}: expected a mapping of repository "
                              f"patterns to actions, got {patterns!r}")
        rules = []
        for pattern, actions in patterns.items():
            if not isinstance(pattern, str) or not _PATTERN_CHARS.match(pattern) \
                    or "***" in pattern:
                raise ConfigError(f"registry config: {where}: invalid repository pattern "
                                  f"{pattern!r} (lowercase name characters, *, ** and "
                                  "{user})")
            if isinstance(actions, str):
                actions = [a.strip() for a in actions.split(",")]
            if not isinstance(actions, list) or not actions or \
                    not all(isinstance(a, str) for a in actions):
                raise ConfigError(f"registry config: {where}.{pattern}: expected a list of "
                                  f"actions (pull, push, delete, *), got {actions!r}")
            unknown = [a for a in actions if a not in ACTIONS | {"*"}]
            if unknown:
                raise ConfigError(f"registry config: {where}.{pattern}: unknown action "
                                  f"{unknown[0]!r} (use pull, push, delete or *)")
            acts = ACTIONS if "*" in actions else frozenset(actions)
            rules.append(Rule(pattern, frozenset(acts)))
        amap.rules[user] = rules
    return amap
