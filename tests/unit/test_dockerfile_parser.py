"""Dockerfile parsing: directives, continuations, comments, forms, flags, words."""

from __future__ import annotations

import pytest

from sdk.build.parser import DockerfileError, name_values, parse, split_words


def test_continuations_comments_and_line_numbers() -> None:
    df = parse("FROM busybox\n# a comment\nRUN echo a \\\n# inside\n    && echo b\n\n"
               "cmd [\"sh\"]\n")
    cmds = [(i.cmd, i.line) for i in df.instructions]
    assert cmds == [("FROM", 1), ("RUN", 3), ("CMD", 7)]
    assert df.instructions[1].rest == "echo a     && echo b"    # as docker history shows
    assert df.instructions[2].json_args == ["sh"]


def test_escape_directive_backtick() -> None:
    df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo hi\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "dir c:\\   && echo hi"


def test_directive_only_at_top() -> None:
    df = parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\"
    assert df.instructions[1].rest == "a  b"


def test_bad_escape_directive() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:1"):
        parse("# escape=x\nFROM a\n")


def test_unknown_instruction_has_line() -> None:
    with pytest.raises(DockerfileError) as exc:
        parse("FROM a\n\nFOO bar\n")
    assert exc.value.line == 3
    assert "unknown instruction: FOO" in str(exc.value)


def test_shell_form_when_json_is_invalid() -> None:
    df = parse('FROM a\nCMD [ "a", b ]\nRUN ["echo", "x"]\n')
    assert df.instructions[1].json_args is None
    assert df.instructions[2].json_args == ["echo", "x"]


def test_flags() -> None:
    df = parse("FROM a\nCOPY --from=build --chown=1:2 /a /b\n"
               "HEALTHCHECK --interval=5s --retries=3 CMD true\n")
    copy, hc = df.instructions[1], df.instructions[2]
    assert copy.flags == {"from": "build", "chown": "1:2"}
    assert copy.rest == "/a /b"
    assert hc.flags == {"interval": "5s", "retries": "3"}
    with pytest.raises(DockerfileError, match="unknown flag: --bogus"):
        parse("FROM a\nCOPY --bogus=1 a b\n")


def test_split_words_keeps_quotes() -> None:
    assert split_words('a="b c" d=e\\ f  g') == ['a="b c"', "d=e\\ f", "g"]
    assert split_words("x='it''s'") == ["x='it''s'"]


def test_name_values_forms() -> None:
    env = parse("FROM a\nENV A=1 B=\"two words\"\nENV LEGACY value with spaces\n"
                "ARG X\nARG Y=3\n").instructions
    assert name_values(env[1]) == [("A", "1"), ("B", '"two words"')]
    assert name_values(env[2]) == [("LEGACY", "value with spaces")]
    assert name_values(env[3], allow_bare=True) == [("X", None)]
    assert name_values(env[4], allow_bare=True) == [("Y", "3")]
    with pytest.raises(DockerfileError, match="can't find ="):
        name_values(parse("FROM a\nENV A=1 B\n").instructions[1])
    with pytest.raises(DockerfileError, match="two arguments"):
        name_values(parse("FROM a\nENV A\n").instructions[1])
