"""The Dockerfile parser: directives, continuations, comments, JSON vs shell forms.

Follows moby/buildkit's ``frontend/dockerfile/parser``: parser directives (``escape``,
``syntax``) only at the very top, a line ending in the escape character continues on
the next one, comment lines are dropped even inside a continuation, and the first word
of each logical line is the instruction (case-insensitive).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sdk.errors import InvalidArgument

INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR"})
#: instructions whose arguments may be a JSON array
JSON_FORMS = frozenset({"ADD", "CMD", "COPY", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"})
#: instructions taking ``--flag=value`` options before their arguments
FLAGGED = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod", "link"},
           "ADD": {"chown", "chmod", "checksum", "keep-git-dir", "link"},
           "RUN": set(), "HEALTHCHECK": {"interval", "timeout", "start-period",
                                         "start-interval", "retries"}}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
#: Dockerfile 1.4 heredocs (buildkit's ``reHeredoc``): ``<<EOF``, ``<<-EOF``,
#: ``<<"EOF"``, ``2<<EOF``, as one word of a RUN, COPY or ADD line
HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})


class DockerfileError(InvalidArgument):
    """A Dockerfile problem, with the line it is on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"Dockerfile:{line}: {message}" if line else message)
        self.line = line
        self.detail = message


@dataclass(slots=True)
class Heredoc:
    """One here-document below a RUN/COPY/ADD line."""
    name: str            # the delimiter, without quotes
    content: str         # the body, a newline after each line (tabs cut with ``<<-``)
    expand: bool         # the delimiter was unquoted: $VAR is expanded (COPY/ADD)
    raw: str             # the body and the delimiter line as written (for the shell)


@dataclass(slots=True)
class Instruction:
    cmd: str                       # upper-case instruction
    rest: str                      # everything after the instruction word (and flags)
    original: str                  # the logical line as written (continuations joined)
    line: int                      # first physical line, 1-based
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None   # exec/JSON form
    escape: str = "\\"
    heredocs: list[Heredoc] = field(default_factory=list)

    def __str__(self) -> str:
        return self.original


@dataclass(slots=True)
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> Dockerfile:
    lines = text.replace("\r\n", "\n").split("\n")
    escape = "\\"
    directives: dict[str, str] = {}
    i = 0
    # directives: leading comment lines of the form "# key=value", no blank lines between
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in directives:
            raise DockerfileError(i + 1, f"only one {key} parser directive can be used")
        directives[key] = value
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(i + 1, f"invalid escape token {value!r} does not "
                                      "match ` or \\")
            escape = value
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        current = raw.lstrip()
        while True:
            body = current.rstrip()
            if body.endswith(escape):
                parts.append(body[:-1])
                i += 1
                # skip comment and blank lines inside a continuation
                while i < len(lines) and (not lines[i].strip()
                                          or lines[i].lstrip().startswith("#")):
                    i += 1
                if i >= len(lines):
                    break
                current = lines[i]
                continue
            parts.append(body)
            i += 1
            break
        logical = "".join(parts).strip()
        if not logical:
            continue
        inst = _instruction(logical, start + 1, escape)
        if inst.cmd in HEREDOC_INSTRUCTIONS and inst.json_args is None:
            i = _heredocs(inst, lines, i)
        out.append(inst)
    return Dockerfile(out, escape, directives)


def heredoc_word(word: str) -> tuple[str, bool, bool] | None:
    """``<<-"EOF"`` -> ("EOF", chomp tabs, expand); None when not a heredoc."""
    m = HEREDOC.match(word)
    if not m or not m.group(3).strip():
        return None
    name = m.group(3).strip()
    quoted = len(name) >= 2 and name[0] == name[-1] and name[0] in "'\""
    if quoted:
        name = name[1:-1]
    return name, bool(m.group(2)), not quoted


def _heredocs(inst: Instruction, lines: list[str], i: int) -> int:
    """Take the bodies of ``inst``'s heredocs from ``lines[i:]``; returns the next line."""
    for word in split_words(inst.rest, inst.escape):
        parsed = heredoc_word(word)
        if parsed is None:
            continue
        name, chomp, expand = parsed
        body: list[str] = []
        raw: list[str] = []
        while True:
            if i >= len(lines):
                raise DockerfileError(inst.line, f"unterminated heredoc: no line {name!r} "
                                      f"ends the here-document of {inst.cmd}")
            line = lines[i]
            i += 1
            raw.append(line)
            text = line.lstrip("\t") if chomp else line
            if text == name:
                break
            body.append(text)
        inst.heredocs.append(Heredoc(name, "".join(b + "\n" for b in body), expand,
                                     "\n".join(raw)))
    return i


def _instruction(logical: str, line: int, escape: str) -> Instruction:
    word, _, rest = logical.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    cmd = word.upper()
    if cmd not in INSTRUCTIONS:
        raise DockerfileError(line, f"unknown instruction: {word}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    if cmd in FLAGGED:
        rest, flags = _flags(cmd, rest, line)
    inst = Instruction(cmd, rest, logical, line, flags, escape=escape)
    if cmd in JSON_FORMS and rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            inst.json_args = value
    return inst


def _flags(cmd: str, rest: str, line: int) -> tuple[str, dict[str, str]]:
    allowed = FLAGGED[cmd]
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            rest = after.strip()
            break
        name, eq, value = word[2:].partition("=")
        if name not in allowed:
            raise DockerfileError(line, f"unknown flag: --{name}" if cmd != "RUN" else
                                  f"the --{name} option requires BuildKit, which berth's "
                                  "classic builder does not implement")
        if not eq and name not in ("link", "keep-git-dir"):
            raise DockerfileError(line, f"missing a value on flag: --{name}")
        flags[name] = value if eq else "true"
        rest = after.strip()
    return rest, flags


def split_words(rest: str, escape: str = "\\") -> list[str]:
    """buildkit's ``parseWords``: split on blanks outside quotes, keeping quotes and
    escapes in the words (they are removed later by shell-word processing)."""
    words: list[str] = []
    word = ""
    quote = ""
    blank_ok = False
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    i += 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word += ch
            i += 1
            ch = rest[i]
        word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def name_values(inst: Instruction, *, allow_bare: bool = False) -> list[tuple[str, str | None]]:
    """``ENV``/``LABEL`` (``key=value ...`` or legacy ``key value``) and ``ARG``
    (``name`` or ``name=value``); values still carry their quotes."""
    words = split_words(inst.rest, inst.escape)
    if not words:
        raise DockerfileError(inst.line, f"{inst.cmd} requires at least one argument")
    if allow_bare:
        out: list[tuple[str, str | None]] = []
        for w in words:
            key, eq, value = w.partition("=")
            if not key:
                raise DockerfileError(inst.line, f"{inst.cmd} names can not be blank")
            out.append((key, value if eq else None))
        return out
    if "=" not in words[0]:
        parts = re.split(r"\s+", inst.rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(inst.line, f"{inst.cmd} must have two arguments")
        return [(parts[0], parts[1])]
    pairs: list[tuple[str, str | None]] = []
    for w in words:
        if "=" not in w:
            raise DockerfileError(inst.line, f"Syntax error - can't find = in {w!r}. Must be "
                                  "of the form: name=value")
        key, _, value = w.partition("=")
        if not key:
            raise DockerfileError(inst.line, f"{inst.cmd} names can not be blank")
        pairs.append((key, value))
    return pairs
