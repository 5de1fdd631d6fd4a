"""``--filter`` parsing: docker/cli's FilterOpt plus the daemon's key check."""

from __future__ import annotations

import pytest

from sdk._internal.filters import parse_bool_filter, parse_filters
from sdk.errors import InvalidArgument

ALLOWED = {"status", "label", "name", "dangling"}


@pytest.mark.parametrize(("values", "want"), [
    ([], {}), (None, {}), ([""], {}),
    (["status=running"], {"status": ["running"]}),
    (["label=a=b", "label=c"], {"label": ["a=b", "c"]}),
    (["Status = exited "], {"status": ["exited"]}),
    (["name=x", "name=x"], {"name": ["x"]}),
    (["name="], {"name": [""]}),
])
def test_parse_filters(values: list[str] | None, want: dict[str, list[str]]) -> None:
    assert parse_filters(values, ALLOWED) == want


def test_unknown_key() -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_filters(["foo=bar"], ALLOWED)
    assert str(exc.value) == "invalid filter 'foo'"


def test_bad_format_wins_over_unknown_key() -> None:
    with pytest.raises(InvalidArgument) as exc:
        parse_filters(["foo=bar", "status"], ALLOWED)
    assert str(exc.value) == "bad format of filter (expected name=value)"


def test_no_key_check_without_allowed() -> None:
    assert parse_filters(["anything=1"]) == {"anything": ["1"]}


@pytest.mark.parametrize(("values", "want"), [
    (["dangling=true"], True), (["dangling=1"], True), (["dangling=false"], False),
    (["dangling=0"], False), (["dangling=true", "dangling=1"], True),
])
def test_bool_filter(values: list[str], want: bool) -> None:
    assert parse_bool_filter(parse_filters(values, ALLOWED), "dangling") is want


def test_bool_filter_errors() -> None:
    assert parse_bool_filter({}, "dangling") is None
    for values, message in [(["dangling=yes"], "invalid filter 'dangling=yes'"),
                            (["dangling=true", "dangling=0"],
                             "invalid filter 'dangling=true,0'"),
                            (["dangling=TRUE"], "invalid filter 'dangling=TRUE'")]:
        with pytest.raises(InvalidArgument) as exc:
            parse_bool_filter(parse_filters(values, ALLOWED), "dangling")
        assert str(exc.value) == message
