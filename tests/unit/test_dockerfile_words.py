"""Shell-word expansion ($VAR, ${VAR:-w}, ${VAR:+w}, quotes, escapes) and Go formatting."""

from __future__ import annotations

import pytest

from sdk.build import gofmt
from sdk.build.shellwords import ShellWordError, process_word, process_words

ENV = {"A": "apple", "E": "", "P": "/usr/bin"}


@pytest.mark.parametrize(("text", "want"), [
    ("$A", "apple"), ("${A}", "apple"), ("x${A}y", "xappley"), ("$NOPE", ""),
    ("${NOPE:-dflt}", "dflt"), ("${E:-dflt}", "dflt"), ("${E-dflt}", ""),
    ("${A:-dflt}", "apple"), ("${A:+set}", "set"), ("${E:+set}", ""), ("${E+set}", "set"),
    ("${NOPE:+set}", ""), ("${NOPE:-${A}}", "apple"), ("'$A'", "$A"), ('"$A"', "apple"),
    ('"a b"', "a b"), ("\\$A", "$A"), ('"\\$A"', "$A"), ('"\\x"', "\\x"), ("a\\ b", "a b"),
    ("$", "$"), ("$1x", "x"), ("${P}:/bin", "/usr/bin:/bin"),
])
def test_process_word(text: str, want: str) -> None:
    assert process_word(text, ENV) == want


def test_process_words_splits_outside_quotes() -> None:
    assert process_words('80 "8 1"  $A', ENV) == ["80", "8 1", "apple"]
    assert process_words("", ENV) == []


def test_escape_token_backtick() -> None:
    assert process_word("a`$A", ENV, escape="`") == "a$A"
    assert process_word("c:\\dir", ENV, escape="`") == "c:\\dir"


def test_unterminated_quotes() -> None:
    with pytest.raises(ShellWordError):
        process_word('"abc', ENV)
    with pytest.raises(ShellWordError):
        process_word("'abc", ENV)
    with pytest.raises(ShellWordError):
        process_word("${A", ENV)


def test_go_formatting() -> None:
    assert gofmt.quote_list(["/bin/sh", "-c", 'echo "hi"']) == \
        '["/bin/sh" "-c" "echo \\"hi\\""]'
    assert gofmt.plain_list(["/data", "/x"]) == "[/data /x]"
    assert gofmt.duration(300 * 10**9) == "5m0s"
    assert gofmt.duration(3 * 10**9) == "3s"
    assert gofmt.duration(1500 * 10**6) == "1.5s"
    assert gofmt.duration(3600 * 10**9 + 1) == "1h0m0.000000001s"
    assert gofmt.duration(500 * 10**6) == "500ms"
    assert gofmt.healthcheck({"Test": ["CMD-SHELL", "true"], "Interval": 5 * 10**9,
                              "Retries": 3}) == \
        '&{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" \'\\x03\'}'
