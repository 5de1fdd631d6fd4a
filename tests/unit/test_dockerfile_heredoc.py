"""Dockerfile 1.4 heredocs in the parser, and their variable expansion."""

from __future__ import annotations

import pytest

from sdk.build.parser import DockerfileError, heredoc_word, parse
from sdk.build.shellwords import expand_heredoc


def test_heredoc_bodies_are_taken_from_the_following_lines() -> None:
    df = parse('FROM x\nRUN <<EOF\necho "$A"\n\nEOF\n'
               'COPY <<a.txt <<"b.txt" /d/\nhi $X\na.txt\nbye $Y\nb.txt\n'
               'RUN cat <<-EOT > /f\n\tx\n\tEOT\nCMD ["y"]\n')
    run, copy, run2, cmd = df.instructions[1:]
    assert run.rest == "<<EOF" and run.line == 2
    assert [(h.name, h.content, h.expand) for h in run.heredocs] == [
        ("EOF", 'echo "$A"\n\n', True)]
    assert [(h.name, h.content, h.expand) for h in copy.heredocs] == [
        ("a.txt", "hi $X\n", True), ("b.txt", "bye $Y\n", False)]
    assert copy.line == 6
    assert run2.heredocs[0].content == "x\n"            # <<- cuts leading tabs
    assert run2.heredocs[0].raw == "\tx\n\tEOT"         # the shell gets it as written
    assert cmd.json_args == ["y"] and cmd.line == 14


def test_heredoc_words_and_what_is_not_one() -> None:
    assert heredoc_word("<<EOF") == ("EOF", False, True)
    assert heredoc_word("<<-'END'") == ("END", True, False)
    assert heredoc_word('2<<"X"') == ("X", False, False)
    for word in ("<<<here", "<<", "a<<b", "$((1<<2))", "<<a<b"):
        assert heredoc_word(word) is None, word
    # a shift inside arithmetic and JSON forms take no body
    df = parse('FROM x\nRUN echo $((1<<2))\nRUN ["sh", "-c", "cat <<EOF"]\nCMD z\n')
    assert [i.cmd for i in df.instructions] == ["FROM", "RUN", "RUN", "CMD"]
    assert not any(i.heredocs for i in df.instructions)


def test_unterminated_heredoc_names_its_line() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: unterminated heredoc.*'EOF'"):
        parse("FROM x\nRUN <<EOF\necho hi\n")


def test_expand_heredoc_keeps_quotes() -> None:
    env = {"X": "1"}
    assert expand_heredoc('a $X "${Y:-d}" \\$Z \'q\' ${X:+set}\n', env) == \
        'a 1 "d" $Z \'q\' set\n'
