"""``.dockerignore``: Docker's pattern rules (moby/patternmatcher).

Each line is a pattern, cleaned like ``filepath.Clean`` with any leading ``/`` removed;
``!`` makes it an exception; ``#`` lines are comments.  ``*`` and ``?`` never cross a
``/``, ``**`` matches any number of directories (also none).  A pattern matching a
directory matches everything below it; the last matching pattern decides.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from sdk.errors import InvalidArgument


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned.lstrip("/") or "."


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    out.append(".*")
                else:
                    out.append("(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= n:
                raise InvalidArgument(f"bad .dockerignore pattern {pattern!r}: trailing \\")
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"bad .dockerignore pattern {pattern!r}: "
                                      "unterminated [")
            body = pattern[i + 1:end]
            if body.startswith("^"):
                body = "!" + body[1:]
            body = body.replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def parse_patterns(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, as Docker reads them."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = _clean(line)
        out.append(("!" if invert else "") + line)
    return out


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for p in patterns:
            exclusion = p.startswith("!")
            body = p[1:] if exclusion else p
            if not body:
                raise InvalidArgument("illegal exclusion pattern: \"!\"")
            body = _clean(body)
            self.patterns.append(Pattern(body, exclusion, _compile(body)))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is ignored."""
        path = _clean(path)
        parents = path.split("/")[:-1]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue        # cannot change the outcome
            hit = bool(p.regex.match(path))
            if not hit and parents:
                for k in range(1, len(parents) + 1):
                    if p.regex.match("/".join(parents[:k])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched
