"""A Go text/template subset for ``--format`` and ``inspect -f``.

Supports fields (``.A.B``, ``.``), variables (``$``, ``$x``), string/number literals,
pipelines (``{{.Names | upper}}``), function calls (json, join, split, upper, lower,
title, len, index, printf, println, pad, truncate, eq, ne, lt, le, gt, ge, and, or,
not), ``if/else if/else``, ``range`` (with ``$k, $v :=``), ``with`` and ``{{- -}}``
trimming.  Values print the way Go prints them (maps as ``map[k:v]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdk.errors import InvalidArgument


class _Missing:
    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()


@dataclass
class Node:
    kind: str                      # text | action | if | range | with
    text: str = ""
    pipe: list[list[str]] = field(default_factory=list)
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)
    vars: list[str] = field(default_factory=list)


@dataclass
class Template:
    nodes: list[Node]
    source: str


def is_table(fmt: str) -> bool:
    return fmt.strip().startswith("table")


def strip_table(fmt: str) -> str:
    return fmt.strip()[5:].strip()


def _lex(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(src):
        j = src.find("{{", i)
        if j < 0:
            out.append(("text", src[i:]))
            break
        text = src[i:j]
        k = src.find("}}", j)
        if k < 0:
            raise InvalidArgument(f"template parsing error: template: :1: unclosed action "
                                  f"in {src!r}")
        inner = src[j + 2:k]
        if inner.startswith("-") and (len(inner) == 1 or inner[1] in " \t\n"):
            text = text.rstrip()
            inner = inner[1:]
        trim_right = inner.endswith("-") and (len(inner) == 1 or inner[-2] in " \t\n")
        if trim_right:
            inner = inner[:-1]
        out.append(("text", text))
        out.append(("action", inner.strip()))
        i = k + 2
        if trim_right:
            while i < len(src) and src[i] in " \t\n\r":
                i += 1
    return [t for t in out if not (t[0] == "text" and t[1] == "")]


def _words(text: str) -> list[str]:
    words, i = [], 0
    while i < len(text):
        c = text[i]
        if c in " \t\n":
            i += 1
        elif c in "\"`":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" and c == '"' else 1
            words.append(text[i:j + 1])
            i = j + 1
        elif c in "|()":
            words.append(c)
            i += 1
        else:
            j = i
            while j < len(text) and text[j] not in " \t\n|()":
                j += 1
            words.append(text[i:j])
            i = j
    return words


def _pipeline(text: str) -> list[list[str]]:
    cmds: list[list[str]] = [[]]
    for w in _words(text):
        if w == "|":
            cmds.append([])
        elif w not in "()":
            cmds[-1].append(w)
    if any(not c for c in cmds):
        raise InvalidArgument(f"template parsing error: template: :1: missing command in "
                              f"{{{{{text}}}}}")
    return cmds


def compile_template(src: str) -> Template:
    tokens = _lex(src)
    pos = 0

    def parse(until: tuple[str, ...]) -> tuple[list[Node], str]:
        nonlocal pos
        nodes: list[Node] = []
        while pos < len(tokens):
            kind, value = tokens[pos]
            pos += 1
            if kind == "text":
                nodes.append(Node("text", value))
                continue
            word = value.split(None, 1)[0] if value else ""
            rest = value[len(word):].strip()
            if word in until or (word == "else" and "else" in until):
                return nodes, value
            if word in ("if", "with", "range"):
                node = Node(word)
                if word == "range" and ":=" in rest:
                    names, _, rest = rest.partition(":=")
                    node.vars = [v.strip() for v in names.split(",")]
                node.pipe = _pipeline(rest)
                node.body, stop = parse(("end", "else"))
                while stop.startswith("else"):
                    tail = stop[4:].strip()
                    if tail.startswith("if"):
                        inner = Node("if", pipe=_pipeline(tail[2:].strip()))
                        inner.body, stop = parse(("end", "else"))
                        node.orelse = [inner] if not node.orelse else node.orelse
                        target = inner
                        while stop.startswith("else"):
                            t2 = stop[4:].strip()
                            if t2.startswith("if"):
                                nxt = Node("if", pipe=_pipeline(t2[2:].strip()))
                                nxt.body, stop = parse(("end", "else"))
                                target.orelse = [nxt]
                                target = nxt
                            else:
                                target.orelse, stop = parse(("end",))
                        break
                    node.orelse, stop = parse(("end",))
                if stop != "end":
                    raise InvalidArgument(f"template parsing error: template: :1: unexpected "
                                          f"EOF in {src!r}")
                nodes.append(node)
                continue
            if word == "end":
                raise InvalidArgument("template parsing error: template: :1: unexpected "
                                      "{{end}}")
            if not value:
                raise InvalidArgument("template parsing error: template: :1: missing value "
                                      "for command")
            nodes.append(Node("action", pipe=_pipeline(value)))
        if until:
            raise InvalidArgument(f"template parsing error: template: :1: unexpected EOF in "
                                  f"{src!r}")
        return nodes, ""

    nodes, _ = parse(())
    return Template(nodes, src)


def go_str(value: Any) -> str:
    if value is None or value is MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _truthy(value: Any) -> bool:
    return value not in (None, MISSING, False, 0, "", [], {}) and not (
        isinstance(value, list | dict | str) and len(value) == 0)


def _field(value: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif value is None or value is MISSING:
            return MISSING
        else:
            value = getattr(value, part, MISSING)
    return value


def _printf(fmt: str, *args: Any) -> str:
    import re

    out = []
    it = iter(args)

    def repl(m: re.Match[str]) -> str:
        spec = m.group(0)
        if spec == "%%":
            return "%"
        arg = next(it, MISSING)
        if spec[-1] in "sv":
            return (spec[:-1] + "s") % go_str(arg)
        if spec[-1] == "q":
            return json.dumps(go_str(arg))
        try:
            return spec % arg
        except TypeError:
            return go_str(arg)

    out.append(re.sub(r"%[-+ #0]*\d*(?:\.\d+)?[sdvqfxXoeg%]", repl, fmt))
    return "".join(out)


FUNCS: dict[str, Any] = {
    "json": lambda v: json.dumps(None if v is MISSING else v, separators=(",", ":")),
    "join": lambda v, sep: sep.join(go_str(x) for x in (v or [])),
    "split": lambda s, sep: str(s).split(sep),
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: go_str(s).title(),
    "len": lambda v: len(v) if v not in (None, MISSING) else 0,
    "index": lambda v, *keys: _index(v, keys),
    "printf": _printf,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "pad": lambda s, left, right: " " * int(left) + go_str(s) + " " * int(right),
    "truncate": lambda s, n: go_str(s)[:int(n)],
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not _truthy(a),
    "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
}


def _index(value: Any, keys: tuple[Any, ...]) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif isinstance(value, list | tuple):
            value = value[int(key)]
        else:
            return MISSING
    return value


class _Scope:
    def __init__(self, dot: Any, variables: dict[str, Any]) -> None:
        self.dot = dot
        self.vars = variables


def _term(word: str, scope: _Scope) -> Any:
    if word.startswith('"'):
        return json.loads(word)
    if word.startswith("`"):
        return word[1:-1]
    if word == ".":
        return scope.dot
    if word.startswith("."):
        return _field(scope.dot, word)
    if word.startswith("$"):
        name, _, path = word.partition(".")
        base = scope.vars.get(name, MISSING)
        return _field(base, path) if path else base
    if word in ("true", "false"):
        return word == "true"
    if word == "nil":
        return None
    try:
        return int(word)
    except ValueError:
        try:
            return float(word)
        except ValueError:
            pass
    raise InvalidArgument(f'template: :1: function "{word}" not defined')


def _eval(pipe: list[list[str]], scope: _Scope) -> Any:
    value: Any = MISSING
    for i, cmd in enumerate(pipe):
        head, args = cmd[0], cmd[1:]
        extra = [value] if i > 0 else []
        if head in FUNCS:
            fargs = [_term(a, scope) for a in args] + extra
            try:
                value = FUNCS[head](*fargs)
            except (TypeError, IndexError, ValueError) as exc:
                raise InvalidArgument(f"template: :1: error calling {head}: {exc}") from None
        else:
            if args or extra:
                raise InvalidArgument(f"template: :1: can't give argument to non-function "
                                      f"{head}")
            value = _term(head, scope)
    return value


def _run(nodes: list[Node], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            value = _eval(node.pipe, scope)
            out.append(go_str(value))
        elif node.kind == "if":
            _run(node.body if _truthy(_eval(node.pipe, scope)) else node.orelse, scope, out)
        elif node.kind == "with":
            value = _eval(node.pipe, scope)
            if _truthy(value):
                _run(node.body, _Scope(value, scope.vars), out)
            else:
                _run(node.orelse, scope, out)
        elif node.kind == "range":
            value = _eval(node.pipe, scope)
            items: list[tuple[Any, Any]]
            if isinstance(value, Mapping):
                items = sorted(value.items())
            elif isinstance(value, list | tuple):
                items = list(enumerate(value))
            else:
                items = []
            if not items:
                _run(node.orelse, scope, out)
            for key, item in items:
                variables = dict(scope.vars)
                if len(node.vars) == 2:
                    variables[node.vars[0]], variables[node.vars[1]] = key, item
                elif len(node.vars) == 1:
                    variables[node.vars[0]] = item
                _run(node.body, _Scope(item, variables), out)


def render(tmpl: Template, data: Any) -> str:
    out: list[str] = []
    _run(tmpl.nodes, _Scope(data, {"$": data}), out)
    return "".join(out)
