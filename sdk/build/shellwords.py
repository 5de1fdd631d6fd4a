"""Shell-word processing of Dockerfile arguments (buildkit's ``shell.Lex``).

``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``,
``${VAR+word}``; single quotes are literal, double quotes allow ``$`` and escape only
``"``, ``$`` and the escape character; outside quotes the escape character makes the
next character literal.  Quotes are removed.
"""

from __future__ import annotations

from collections.abc import Mapping

from sdk.errors import InvalidArgument


class ShellWordError(InvalidArgument):
    pass


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class _Scanner:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    # ---- words ----------------------------------------------------------------------
    def words(self, split: bool, stop: str = "") -> list[str]:
        """Process up to ``stop`` (used inside ``${...}``) or the end."""
        out: list[str] = []
        word: list[str] = []
        started = False
        while True:
            ch = self.peek()
            if ch == "" or (stop and ch == stop):
                break
            if split and ch.isspace():
                self.next()
                if started:
                    out.append("".join(word))
                    word, started = [], False
                continue
            started = True
            if ch == "'":
                word.append(self.single_quote())
            elif ch == '"':
                word.append(self.double_quote())
            elif ch == "$":
                word.append(self.dollar())
            elif ch == self.escape:
                self.next()
                nxt = self.next()
                word.append(nxt)
            else:
                word.append(self.next())
        if started or not split:
            out.append("".join(word))
        return out

    def single_quote(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.next()
            if ch == "":
                raise ShellWordError("unexpected end of statement while looking for "
                                     "matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.peek()
            if ch == "":
                raise ShellWordError("unexpected end of statement while looking for "
                                     "matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                nxt = self.peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out = []
        if self.peek().isdigit():       # positional: a single digit, like the shell
            return self.next()
        while self.peek() and _is_name_char(self.peek()):
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()
        ch = self.peek()
        if ch != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()
        name = self.name()
        if not name:
            raise ShellWordError(f"missing ':' in substitution: {self.s!r}" if self.peek()
                                 else "syntax error: missing '}'")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = False
        if ch == ":":
            colon = True
            ch = self.next()
        if ch in ("-", "+"):
            word = "".join(self.words(False, stop="}"))
            if self.next() != "}":
                raise ShellWordError("syntax error: missing '}'")
            value = self.env.get(name)
            is_set = value is not None and (value != "" or not colon)
            if ch == "-":
                return value if is_set and value is not None else word
            return word if is_set else ""
        raise ShellWordError(f"unsupported modifier ({ch}) in substitution: {self.s!r}")


def process_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand and unquote ``text`` as one word (blanks are kept)."""
    return _Scanner(text, env, escape).words(False)[0]


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and unquote ``text``, split into words on unquoted blanks."""
    return _Scanner(text, env, escape).words(True)


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """The body of an unquoted heredoc of COPY/ADD: ``$VAR`` and ``${VAR...}`` are
    expanded, ``\\$`` is a literal ``$``; quotes and other characters stay as they are."""
    sc = _Scanner(text, env, escape)
    out: list[str] = []
    while sc.peek():
        ch = sc.peek()
        if ch == "$":
            out.append(sc.dollar())
        elif ch == escape and sc.s[sc.i + 1:sc.i + 2] == "$":
            sc.next()
            out.append(sc.next())
        else:
            out.append(sc.next())
    return "".join(out)


def env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out
