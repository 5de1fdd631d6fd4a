# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Option comparisons shared by the berth.engine modules (pure Python, no Ansible imports).

An option's *kind* says how its values are compared:

* ``value``: scalars and ordered lists, equal or not;
* ``set``: unordered lists (entries may be dicts), duplicates ignored;
* ``dict``: mappings compared key by key.

A *mode* (``comparisons`` in the modules) says what counts as a difference:

* ``strict``: the actual value must equal the expected one;
* ``allow_more_present``: a set or dict may hold extra entries (a value is strict);
* ``ignore``: never a difference.

``*`` in ``comparisons`` sets the mode of every option not named explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MODES = ("strict", "ignore", "allow_more_present")
KINDS = ("value", "set", "dict")


class ComparisonError(ValueError):
    """A bad ``comparisons`` entry (unknown option or mode)."""


@dataclass(frozen=True)
class Difference:
    """One option whose actual value does not match what was asked."""

    option: str
    expected: Any
    actual: Any

    def explain(self) -> str:
        return f"{self.option} (expected {_show(self.expected)}, actual {_show(self.actual)})"


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _key(value: Any) -> str:
    """A hashable, order-independent form of a JSON value (for set comparison)."""
    return json.dumps(value, sort_keys=True, default=str)


def normalize(value: Any) -> Any:
    """JSON round trip: tuples become lists, keys become strings (as stored records)."""
    return json.loads(json.dumps(value, default=str))


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def equal(expected: Any, actual: Any, kind: str = "value", mode: str = "strict") -> bool:
    """Whether ``actual`` satisfies ``expected`` for an option of ``kind`` under ``mode``."""
    if kind not in KINDS:
        raise ValueError(f"unknown comparison kind {kind!r}")
    if mode not in MODES:
        raise ComparisonError(f"unknown comparison mode {mode!r} (use one of "
                              f"{', '.join(MODES)})")
    if mode == "ignore":
        return True
    if kind == "value":
        if _empty(expected) and _empty(actual):
            return True
        return bool(normalize(expected) == normalize(actual))
    if kind == "set":
        want = {_key(v) for v in (expected or [])}
        have = {_key(v) for v in (actual or [])}
        return want <= have if mode == "allow_more_present" else want == have
    want_d = normalize(expected or {})
    have_d = normalize(actual or {})
    if mode == "allow_more_present":
        return all(k in have_d and have_d[k] == v for k, v in want_d.items())
    return bool(want_d == have_d)


def resolve_modes(requested: dict[str, str] | None, defaults: dict[str, str]) -> dict[str, str]:
    """Each option's mode from ``comparisons`` (``*`` = all unnamed options).

    ``defaults`` maps every comparable option to its default mode; naming anything else
    is an error, as is a mode outside :data:`MODES`.
    """
    requested = dict(requested or {})
    for name, mode in requested.items():
        if name != "*" and name not in defaults:
            raise ComparisonError(
                f"comparisons: unknown option {name!r} (comparable options: "
                f"{', '.join(sorted(defaults))})")
        if mode not in MODES:
            raise ComparisonError(
                f"comparisons: {name!r} has mode {mode!r}; use one of {', '.join(MODES)}")
    star = requested.pop("*", None)
    return {name: requested.get(name, star or default) for name, default in defaults.items()}


def dict_differences(option: str, expected: dict[str, Any] | None,
                     actual: dict[str, Any] | None, mode: str) -> list[Difference]:
    """Per-key differences of a dict option, named ``option.key`` (clearer than a blob)."""
    want = normalize(expected or {})
    have = normalize(actual or {})
    out = []
    for key in sorted(set(want) | set(have)):
        if key in want and (key not in have or have[key] != want[key]):
            out.append(Difference(f"{option}.{key}", want[key], have.get(key)))
        elif key not in want and mode == "strict":
            out.append(Difference(f"{option}.{key}", None, have[key]))
    return out


def set_differences(option: str, expected: list[Any] | None, actual: list[Any] | None,
                    mode: str) -> list[Difference]:
    """One difference for a set option, listing the missing and (strict) extra entries."""
    want = {_key(v): v for v in normalize(expected or [])}
    have = {_key(v): v for v in normalize(actual or [])}
    missing = [want[k] for k in sorted(set(want) - set(have))]
    extra = [have[k] for k in sorted(set(have) - set(want))] if mode == "strict" else []
    if not missing and not extra:
        return []
    return [Difference(option, sorted(want.values(), key=_key),
                       sorted(have.values(), key=_key))]


def differences(option: str, expected: Any, actual: Any, kind: str,
                mode: str) -> list[Difference]:
    """The differences of one option (empty when it matches under ``mode``)."""
    if equal(expected, actual, kind, mode):
        return []
    if kind == "dict":
        return dict_differences(option, expected, actual, mode)
    if kind == "set":
        return set_differences(option, expected, actual, mode)
    return [Difference(option, normalize(expected), normalize(actual))]


def explain(diffs: list[Difference]) -> str:
    """``opt (expected X, actual Y); ...`` for ``msg``."""
    return "; ".join(d.explain() for d in diffs)


def diff_result(diffs: list[Difference]) -> dict[str, dict[str, Any]]:
    """Ansible's ``diff`` (before = actual, after = expected) for the differing options."""
    return {"before": {d.option: d.actual for d in diffs},
            "after": {d.option: d.expected for d in diffs}}
