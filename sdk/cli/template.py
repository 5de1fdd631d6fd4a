"""Go's text/template, as docker uses it for ``--format`` and ``inspect -f``.

Supported: text, ``{{.A.B}}`` (dict keys, object attributes, methods), ``{{.}}``, ``$``
and ``$x`` variables (``:=`` and ``=``), string/raw/char/number/bool/nil literals,
pipes, parenthesized pipelines, ``if``/``else if``/``with``/``else with``/``range``
(with ``$i, $e :=``, ``break``, ``continue``, ``else``), comments, ``{{-``/``-}}``
trimming; Go's builtins (and or not len index slice print printf println eq ne lt le gt
ge html js urlquery call) and docker's (json split join title lower upper pad truncate).
Not supported: ``define``/``template``/``block``.

Values print like Go's ``fmt``: maps as ``map[a:1 b:2]`` (sorted keys), lists as
``[a b]``, ``true``/``false``, a missing map key or nil as ``<no value>`` (``<nil>``
inside collections).  Errors use Go's messages behind docker's prefix:
``template parsing error: template: :1: function "foo" not defined`` and
``template parsing error: template: :1:2: executing "" at <.Nope>: ...``.

Compile once with :func:`compile_template`, then :func:`render` per item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sdk._internal.units import go_quote
from sdk.errors import InvalidArgument

_PREFIX = "template parsing error: "


class TemplateError(InvalidArgument):
    """A template that does not parse or fails while executing (docker exit code 125)."""


class _Missing:
    """Go's invalid ``reflect.Value``: a missing map key, or nil seen through ``interface{}``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
_NOFINAL: Any = object()    # no value piped in from a previous command


# =========================================================================== lexer

_SPACE = " \t\r\n"
_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "nil",
             "template", "with"}
_ARG_KINDS = {"bool", "charconst", "dot", "field", "ident", "number", "nil", "rawstring",
              "string", "var", "lparen"}


class _Tok:
    __slots__ = ("kind", "val", "pos", "line")

    def __init__(self, kind: str, val: str, pos: int, line: int) -> None:
        self.kind, self.val, self.pos, self.line = kind, val, pos, line

    def __str__(self) -> str:      # Go's item.String(), used in "unexpected %s"
        if self.kind == "eof":
            return "EOF"
        if self.kind == "error":
            return self.val
        if self.kind in _KEYWORDS or self.kind == "dot":
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


def _fmt_rune(ch: str) -> str:
    """Go's ``%#U``."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


class _Lexer:
    """Go's text/template lexer, run to completion (an error token ends the stream)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.toks: list[_Tok] = []
        self.depth = 0

    def line_at(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def emit(self, kind: str, start: int, end: int) -> None:
        self.toks.append(_Tok(kind, self.text[start:end], start, self.line_at(start)))

    def error(self, msg: str, start: int) -> None:
        self.toks.append(_Tok("error", msg, start, self.line_at(start)))

    def run(self) -> list[_Tok]:
        state: Callable[[], Any] | None = self.lex_text
        while state is not None:
            state = state()
        last = self.toks[-1]
        self.toks.extend([last, last, last])    # parser may peek past the end
        return self.toks

    def right_delim(self, pos: int) -> tuple[bool, bool]:
        text = self.text
        if len(text) >= pos + 4 and text[pos] in _SPACE and text[pos + 1] == "-" and \
                text.startswith("}}", pos + 2):
            return True, True
        return text.startswith("}}", pos), False

    def lex_text(self) -> Any:
        text, start = self.text, self.pos
        i = text.find("{{", start)
        if i < 0:
            if start < len(text):
                self.emit("text", start, len(text))
            self.toks.append(_Tok("eof", "", len(text), self.line_at(len(text))))
            return None
        end = i
        if text.startswith("-", i + 2) and len(text) > i + 3 and text[i + 3] in _SPACE:
            while end > start and text[end - 1] in _SPACE:
                end -= 1
        if end > start:
            self.emit("text", start, end)
        self.pos = i
        return self.lex_left_delim

    def lex_left_delim(self) -> Any:
        text, pos = self.text, self.pos
        trim = text.startswith("-", pos + 2) and len(text) > pos + 3 and text[pos + 3] in _SPACE
        after = 2 if trim else 0
        if text.startswith("/*", pos + 2 + after):
            self.pos = pos + 2 + after
            return self.lex_comment
        self.emit("left", pos, pos + 2)
        self.pos = pos + 2 + after
        self.depth = 0
        return self.lex_inside

    def lex_comment(self) -> Any:
        start = self.pos
        end = self.text.find("*/", start + 2)
        if end < 0:
            self.error("unclosed comment", start)
            return None
        self.pos = end + 2
        delim, trim = self.right_delim(self.pos)
        if not delim:
            self.error("comment ends before closing delimiter", start)
            return None
        self.pos += (2 if trim else 0) + 2
        if trim:
            self.skip_space()
        return self.lex_text

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def lex_right_delim(self) -> Any:
        _, trim = self.right_delim(self.pos)
        if trim:
            self.pos += 2
        self.emit("right", self.pos, self.pos + 2)
        self.pos += 2
        if trim:
            self.skip_space()
        return self.lex_text

    def at_terminator(self, pos: int) -> bool:
        if pos >= len(self.text):
            return True
        ch = self.text[pos]
        return ch in _SPACE or ch in ".,|:()" or self.text.startswith("}}", pos)

    def lex_inside(self) -> Any:      # noqa: C901 - one branch per token kind, as in Go
        text, pos = self.text, self.pos
        delim, _ = self.right_delim(pos)
        if delim:
            if self.depth == 0:
                return self.lex_right_delim
            self.error("unclosed left paren", pos)
            return None
        if pos >= len(text):
            self.error("unclosed action", pos)
            return None
        ch = text[pos]
        nxt = text[pos + 1] if pos + 1 < len(text) else ""
        if ch in _SPACE:
            return self.lex_space
        if ch == "=":
            self.emit("assign", pos, pos + 1)
        elif ch == ":":
            if nxt != "=":
                self.error("expected :=", pos)
                return None
            self.emit("declare", pos, pos + 2)
            self.pos += 1
        elif ch == "|":
            self.emit("pipe", pos, pos + 1)
        elif ch in "\"'":
            return self.lex_quote
        elif ch == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                self.error("unterminated raw quoted string", pos)
                return None
            self.emit("rawstring", pos, end + 1)
            self.pos = end
        elif ch == "$":
            return self.lex_variable
        elif ch == "." and not ("0" <= nxt <= "9" and nxt):
            return self.lex_field
        elif ch in "+-." or "0" <= ch <= "9":
            return self.lex_number
        elif _is_alnum(ch):
            return self.lex_identifier
        elif ch == "(":
            self.emit("lparen", pos, pos + 1)
            self.depth += 1
        elif ch == ")":
            self.emit("rparen", pos, pos + 1)
            self.depth -= 1
            if self.depth < 0:
                self.error("unexpected right paren", pos)
                return None
        elif ch <= "\x7f" and ch.isprintable():
            self.emit("char", pos, pos + 1)
        else:
            self.error(f"unrecognized character in action: {_fmt_rune(ch)}", pos)
            return None
        self.pos += 1
        return self.lex_inside

    def lex_space(self) -> Any:
        start = self.pos
        self.skip_space()
        delim, trim = self.right_delim(self.pos - 1)
        if delim and trim:
            self.pos -= 1       # leave " -}}" for the right delimiter
            if self.pos == start:
                return self.lex_right_delim
        self.emit("space", start, self.pos)
        return self.lex_inside

    def lex_quote(self) -> Any:
        text, start = self.text, self.pos
        quote = text[start]
        i = start + 1
        while True:
            ch = text[i] if i < len(text) else ""
            if ch == "\\":
                i += 1
                ch = text[i] if i < len(text) else ""
                if ch and ch != "\n":
                    i += 1
                    continue
            if not ch or ch == "\n":
                self.error("unterminated character constant" if quote == "'" else
                           "unterminated quoted string", start)
                return None
            i += 1
            if ch == quote:
                break
        self.emit("charconst" if quote == "'" else "string", start, i)
        self.pos = i
        return self.lex_inside

    def lex_word(self, start: int) -> int | None:
        i = start
        while i < len(self.text) and _is_alnum(self.text[i]):
            i += 1
        if not self.at_terminator(i):
            self.error(f"bad character {_fmt_rune(self.text[i])}", start)
            return None
        return i

    def lex_identifier(self) -> Any:
        start = self.pos
        end = self.lex_word(start)
        if end is None:
            return None
        word = self.text[start:end]
        kind = word if word in _KEYWORDS else "bool" if word in ("true", "false") else "ident"
        self.emit(kind, start, end)
        self.pos = end
        return self.lex_inside

    def lex_field(self) -> Any:
        return self.lex_field_or_var("field", "dot")

    def lex_variable(self) -> Any:
        return self.lex_field_or_var("var", "var")

    def lex_field_or_var(self, kind: str, bare: str) -> Any:
        start = self.pos
        if self.at_terminator(start + 1):
            self.emit(bare, start, start + 1)
            self.pos = start + 1
            return self.lex_inside
        end = self.lex_word(start + 1)
        if end is None:
            return None
        self.emit(kind, start, end)
        self.pos = end
        return self.lex_inside

    def lex_number(self) -> Any:
        text, start = self.text, self.pos
        i = start

        def run(chars: str) -> None:
            nonlocal i
            while i < len(text) and text[i] in chars:
                i += 1

        def accept(chars: str) -> bool:
            nonlocal i
            if i < len(text) and text[i] in chars:
                i += 1
                return True
            return False

        accept("+-")
        digits = "0123456789_"
        if accept("0"):
            if accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif accept("oO"):
                digits = "01234567_"
            elif accept("bB"):
                digits = "01_"
        run(digits)
        if accept("."):
            run(digits)
        if len(digits) == 11 and accept("eE"):
            accept("+-")
            run("0123456789_")
        if len(digits) == 23 and accept("pP"):
            accept("+-")
            run("0123456789_")
        accept("i")
        if i < len(text) and _is_alnum(text[i]):
            self.error(f"bad number syntax: {go_quote(text[start:i + 1])}", start)
            return None
        self.emit("number", start, i)
        self.pos = i
        return self.lex_inside


# =========================================================================== nodes

class _Node:
    __slots__ = ("pos",)

    def __str__(self) -> str:   # pragma: no cover - every node overrides it
        return ""


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text

    def __str__(self) -> str:
        return self.text


class _List(_Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[_Node]) -> None:
        self.pos, self.nodes = pos, nodes

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class _Pipe(_Node):
    __slots__ = ("decl", "is_assign", "cmds")

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.decl: list[str] = []           # "$x" names declared or assigned
        self.is_assign = False
        self.cmds: list[_Command] = []

    def __str__(self) -> str:
        head = ", ".join(self.decl) + (" = " if self.is_assign else " := ") if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.args: list[_Node] = []

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


class _Action(_Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: _Pipe) -> None:
        self.pos, self.pipe = pos, pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class _Branch(_Node):
    """``if``, ``with`` and ``range``: a pipeline, a body and an optional ``else``."""

    __slots__ = ("keyword", "pipe", "body", "alt")

    def __init__(self, keyword: str, pos: int, pipe: _Pipe, body: _List,
                 alt: _List | None) -> None:
        self.keyword, self.pos, self.pipe, self.body, self.alt = keyword, pos, pipe, body, alt

    def __str__(self) -> str:
        alt = "{{else}}" + str(self.alt) if self.alt is not None else ""
        return f"{{{{{self.keyword} {self.pipe}}}}}{self.body}{alt}{{{{end}}}}"


class _Jump(_Node):
    """``{{break}}`` / ``{{continue}}``."""

    __slots__ = ("keyword",)

    def __init__(self, pos: int, keyword: str) -> None:
        self.pos, self.keyword = pos, keyword

    def __str__(self) -> str:
        return "{{" + self.keyword + "}}"


class _Field(_Node):
    __slots__ = ("idents",)

    def __init__(self, pos: int, idents: tuple[str, ...]) -> None:
        self.pos, self.idents = pos, idents

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


class _Var(_Node):
    __slots__ = ("idents",)

    def __init__(self, pos: int, idents: tuple[str, ...]) -> None:
        self.pos, self.idents = pos, idents

    def __str__(self) -> str:
        return ".".join(self.idents)


class _Chain(_Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos: int, node: _Node, fields: tuple[str, ...]) -> None:
        self.pos, self.node, self.fields = pos, node, fields

    def __str__(self) -> str:
        head = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return head + "".join("." + f for f in self.fields)


class _Ident(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class _Literal(_Node):
    """Dot, nil, bool, number and string operands: ``text`` is the source spelling."""

    __slots__ = ("kind", "text", "value", "is_int")

    def __init__(self, pos: int, kind: str, text: str, value: Any = None,
                 is_int: bool = False) -> None:
        self.pos, self.kind, self.text, self.value, self.is_int = pos, kind, text, value, is_int

    def __str__(self) -> str:
        return self.text


_END, _ELSE = "{{end}}", "{{else}}"


# =========================================================================== parser

class _ParseError(Exception):
    pass


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


def _unquote(text: str) -> str:
    """``strconv.Unquote`` for "...", `...` and '.' literals."""
    if text[0] == "`":
        return text[1:-1].replace("\r", "")
    quote, body, out, i = text[0], text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == quote and quote == "'":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in _ESCAPES and (esc != "'" or quote == "'") and (esc != '"' or quote == '"'):
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in "xuU" and esc:
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if esc != "x" and (code > 0x10FFFF or 0xD800 <= code < 0xE000):
                raise ValueError("invalid syntax")
            out.append(chr(code))
            i += 2 + width
        elif "0" <= esc <= "7":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or not all("0" <= c <= "7" for c in digits) or \
                    int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    result = "".join(out)
    if quote == "'" and len(result) != 1:
        raise ValueError("invalid syntax")
    return result


def _number(tok: _Tok) -> _Literal:
    """parse.NumberNode: an int when exactly integral, else a float (Go's ideal constants)."""
    text = tok.val
    if tok.kind == "charconst":
        try:
            return _Literal(tok.pos, "number", text, ord(_unquote(text)), True)
        except ValueError:
            raise _ParseError(f"malformed character constant: {text}") from None
    if text.endswith("i"):
        raise _ParseError(f"illegal number syntax: {go_quote(text)}")
    body = text.lstrip("+-")
    neg = text.startswith("-")
    clean = body.replace("_", "")
    try:
        lower = clean.lower()
        if lower.startswith(("0x", "0o", "0b")) and not any(c in lower[2:] for c in ".p"):
            value: int | float = int(clean, 0)
        elif len(clean) > 1 and clean[0] == "0" and clean.isdigit():
            value = int(clean, 8)
        elif clean.isdigit():
            value = int(clean)
        elif lower.startswith("0x"):
            value = float.fromhex(clean)
        else:
            if not clean or not any(c.isdigit() for c in clean):
                raise ValueError
            value = float(clean)
        if "_" in body and not _underscores_ok(body):
            raise ValueError
    except (ValueError, OverflowError):
        raise _ParseError(f"illegal number syntax: {go_quote(text)}") from None
    if neg:
        value = -value
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 64:
            raise _ParseError(f"illegal number syntax: {go_quote(text)}")
        return _Literal(tok.pos, "number", text, value, True)
    is_hex_int = lower.startswith("0x") and "p" not in lower
    if value == int(value) and not any(c in text for c in ".eEpP") or is_hex_int:
        return _Literal(tok.pos, "number", text, int(value), True)
    return _Literal(tok.pos, "number", text, value, value == int(value))


def _underscores_ok(body: str) -> bool:
    """Go's rule: an underscore only between digits or after a base prefix."""
    prev = ""
    for i, ch in enumerate(body):
        if ch == "_":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if not (prev.isalnum() and nxt.isalnum()):
                return False
        prev = ch
    return True


class _Parser:
    def __init__(self, text: str, funcs: Mapping[str, Any]) -> None:
        self.toks = _Lexer(text).run()
        self.i = 0
        self.line = 1
        self.funcs = funcs
        self.vars = ["$"]
        self.range_depth = 0

    # -- token stream
    def next(self) -> _Tok:
        tok = self.toks[min(self.i, len(self.toks) - 1)]
        self.i += 1
        self.line = tok.line
        return tok

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> _Tok:
        return self.toks[min(self.i, len(self.toks) - 1)]

    def next_non_space(self) -> _Tok:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def peek_non_space(self) -> _Tok:
        tok = self.next_non_space()
        self.backup()
        return tok

    def fail(self, msg: str) -> _ParseError:
        return _ParseError(f"template: :{self.line}: {msg}")

    def unexpected(self, tok: _Tok, context: str) -> _ParseError:
        return self.fail(f"unexpected {tok} in {context}")

    def expect(self, kind: str, context: str) -> _Tok:
        tok = self.next_non_space()
        if tok.kind != kind:
            raise self.unexpected(tok, context)
        return tok

    # -- grammar
    def parse(self) -> _List:
        root = _List(0, [])
        while self.peek().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, str):
                raise self.fail(f"unexpected {node}")
            root.nodes.append(node)
        return root

    def item_list(self) -> tuple[_List, str]:
        lst = _List(self.peek_non_space().pos, [])
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, str):
                return lst, node
            lst.nodes.append(node)
        raise self.fail("unexpected EOF")

    def text_or_action(self) -> _Node | str:
        tok = self.next_non_space()
        if tok.kind == "text":
            return _Text(tok.pos, tok.val)
        if tok.kind == "left":
            return self.action()
        raise self.unexpected(tok, "input")

    def action(self) -> _Node | str:
        tok = self.next_non_space()
        kind = tok.kind
        if kind == "end":
            self.expect("right", "end")
            return _END
        if kind == "else":
            if self.peek_non_space().kind not in ("if", "with"):
                self.expect("right", "else")
            return _ELSE
        if kind in ("if", "with", "range"):
            return self.control(kind)
        if kind in ("break", "continue"):
            nxt = self.next_non_space()
            if nxt.kind != "right":
                raise self.unexpected(nxt, "{{" + kind + "}}")
            if self.range_depth == 0:
                raise self.fail(f"{{{{{kind}}}}} outside {{{{range}}}}")
            return _Jump(tok.pos, kind)
        if kind in ("define", "template", "block"):
            raise self.fail(f"{{{{{kind}}}}} is not supported")
        self.backup()
        start = self.peek()
        return _Action(start.pos, self.pipeline("command"))

    def control(self, keyword: str) -> _Branch:
        mark = len(self.vars)
        pipe = self.pipeline(keyword)
        if keyword == "range":
            self.range_depth += 1
        body, nxt = self.item_list()
        if keyword == "range":
            self.range_depth -= 1
        alt = None
        if nxt == _ELSE:
            chained = self.peek().kind
            if keyword in ("if", "with") and chained == keyword:
                self.next()
                alt = _List(self.peek().pos, [self.control(keyword)])
            else:
                alt, nxt = self.item_list()
                if nxt != _END:
                    raise self.fail(f"expected end; found {nxt}")
        del self.vars[mark:]
        return _Branch(keyword, pipe.pos, pipe, body, alt)

    def pipeline(self, context: str) -> _Pipe:
        pipe = _Pipe(self.peek_non_space().pos)
        while True:         # declarations: "$x :=", "$x =", "$i, $e :=" (range)
            save = self.i
            var = self.next_non_space()
            if var.kind != "var":
                self.i = save
                break
            nxt = self.peek_non_space()
            if nxt.kind in ("assign", "declare"):
                pipe.is_assign = nxt.kind == "assign"
                self.next_non_space()
                pipe.decl.append(var.val)
                self.vars.append(var.val)
                break
            if nxt.kind == "char" and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(var.val)
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in ("var", "right", "rparen"):
                        continue
                    raise self.fail("range can only initialize variables")
                raise self.fail(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            tok = self.next_non_space()
            if tok.kind in ("right", "rparen"):
                self.check_pipeline(pipe, context)
                if tok.kind == "rparen":
                    self.backup()
                return pipe
            if tok.kind in _ARG_KINDS:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            raise self.fail(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            first = cmd.args[0]
            if isinstance(first, _Literal):
                raise self.fail(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind == "error":
                raise self.fail(tok.val)
            if tok.kind in ("right", "rparen"):
                self.backup()
            elif tok.kind != "pipe":
                raise self.fail(f"unexpected {tok} in operand")
            break
        if not cmd.args:
            raise self.fail("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        pos = self.peek().pos
        fields: list[str] = []
        while self.peek().kind == "field":
            fields.append(self.next().val[1:])
        if isinstance(node, _Field):
            return _Field(pos, node.idents + tuple(fields))
        if isinstance(node, _Var):
            return _Var(pos, node.idents + tuple(fields))
        if isinstance(node, _Literal):
            raise self.fail(f"unexpected . after term {go_quote(str(node))}")
        return _Chain(pos, node, tuple(fields))

    def term(self) -> _Node | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind == "error":
            raise self.fail(tok.val)
        if kind == "ident":
            if tok.val not in self.funcs:
                raise self.fail(f"function {go_quote(tok.val)} not defined")
            return _Ident(tok.pos, tok.val)
        if kind == "dot":
            return _Literal(tok.pos, "dot", ".")
        if kind == "nil":
            return _Literal(tok.pos, "nil", "nil")
        if kind == "var":
            if tok.val not in self.vars:
                raise self.fail(f"undefined variable {go_quote(tok.val)}")
            return _Var(tok.pos, (tok.val,))
        if kind == "field":
            return _Field(tok.pos, (tok.val[1:],))
        if kind == "bool":
            return _Literal(tok.pos, "bool", tok.val, tok.val == "true")
        if kind in ("number", "charconst"):
            try:
                return _number(tok)
            except _ParseError as exc:
                raise self.fail(str(exc)) from None
        if kind == "lparen":
            pipe = self.pipeline("parenthesized pipeline")
            close = self.next()
            if close.kind != "rparen":
                raise self.fail(f"unclosed right paren: unexpected {close}")
            return pipe
        if kind in ("string", "rawstring"):
            try:
                return _Literal(tok.pos, "string", tok.val, _unquote(tok.val))
            except ValueError as exc:
                raise self.fail(str(exc)) from None
        self.backup()
        return None


# =========================================================================== values

def go_type(value: Any) -> str:
    """A Go-ish type name for messages (``string``, ``map[string]interface {}``...)."""
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits and decimal-point position (value = 0.DIGITS x 10^dp)."""
    text = repr(abs(value))
    mant, _, exp = text.partition("e")
    whole, _, frac = mant.partition(".")
    if frac == "0":
        frac = ""
    digits = whole + frac
    dp = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped.rstrip("0") or "0", dp


def go_float(value: float, verb: str = "g", prec: int | None = None) -> str:
    """Go's ``strconv.FormatFloat`` for %v/%g (shortest), %e and %f."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if str(value).startswith("-") else ""
    if verb in "eE":
        out = f"{abs(value):.{6 if prec is None else prec}e}"
        return sign + (out.upper() if verb == "E" else out)
    if verb in "fF":
        return sign + f"{abs(value):.{6 if prec is None else prec}f}"
    if prec is not None:
        out = f"{abs(value):.{max(prec, 1)}g}"
        return sign + (out.upper() if verb == "G" else out)
    if value == 0:
        return sign + "0"
    digits, dp = _shortest_digits(value)
    exp = dp - 1
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out = f"{mant}{'E' if verb == 'G' else 'e'}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif dp <= 0:
        out = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        out = digits + "0" * (dp - len(digits))
    else:
        out = digits[:dp] + "." + digits[dp:]
    return sign + out


def _sort_key(key: Any) -> tuple[int, Any]:
    if isinstance(key, bool):
        return (0, key)
    if isinstance(key, int | float):
        return (1, key)
    if isinstance(key, str):
        return (2, key)
    return (3, str(key))


def go_sprint(value: Any) -> str:
    """``fmt.Sprint`` of one value (``%v``): how Go prints it inside a template."""
    kind = type(value)
    if kind is str:
        return value
    if value is None or value is MISSING:
        return "<nil>"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return go_float(value)
    return _format(value, "v", "", None, None)


def _print_value(value: Any) -> str:
    """printValue: what ``{{pipeline}}`` writes."""
    if type(value) is str:
        return value
    if value is MISSING or value is None:
        return "<no value>"
    return go_sprint(value)


def _truth(value: Any) -> bool:
    """Go's ``isTrue``: zero values are false, structs (objects) are true."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict | Mapping):
        return bool(value)
    return True


# --------------------------------------------------------------------------- fmt verbs

def _pad(text: str, width: int | None, flags: str) -> str:
    if width is None or len(text) >= width:
        return text
    fill = " " * (width - len(text))
    return text + fill if "-" in flags else fill + text


def _pad_number(sign: str, body: str, width: int | None, flags: str, zero_ok: bool) -> str:
    if width is not None and "0" in flags and "-" not in flags and zero_ok:
        body = body.rjust(width - len(sign), "0")
    return _pad(sign + body, width, flags)


def _bad_verb(value: Any, verb: str) -> str:
    if value is None or value is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(value)}={go_sprint(value)})"


def _format(value: Any, verb: str, flags: str, width: int | None, prec: int | None) -> str:
    """One ``fmt`` operand: ``%v %s %d %q %x %X %o %b %c %U %e %f %g %t %T``."""
    if verb == "T":
        return _pad(go_type(value), width, flags)
    if value is None or value is MISSING:
        return _pad("<nil>", width, flags) if verb == "v" else _bad_verb(value, verb)
    if isinstance(value, bool):
        if verb in "vt":
            return _pad("true" if value else "false", width, flags)
        return _bad_verb(value, verb)
    if isinstance(value, int):
        return _format_int(value, verb, flags, width, prec)
    if isinstance(value, float):
        if verb not in "vgGeEfF":
            return _bad_verb(value, verb)
        text = go_float(value, "g" if verb == "v" else verb, prec)
        sign = "-" if text.startswith("-") else "+" if "+" in flags else " " if " " in flags \
            else ""
        return _pad_number(sign, text.lstrip("-"), width, flags, value == value)
    if isinstance(value, str):
        if verb in "vs":
            return _pad(value if prec is None else value[:prec], width, flags)
        if verb == "q":
            return _pad(go_quote(value if prec is None else value[:prec]), width, flags)
        if verb in "xX":
            out = value.encode().hex()
            return _pad(out.upper() if verb == "X" else out, width, flags)
        return _bad_verb(value, verb)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{_format(k, verb, flags, width, prec)}:"
                                 f"{_format(v, verb, flags, width, prec)}"
                                 for k, v in items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_format(v, verb, flags, width, prec) for v in value) + "]"
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return "{" + " ".join(_format(getattr(value, f), verb, flags, width, prec)
                              for f in fields) + "}"
    return _format(str(value), verb, flags, width, prec)


def _format_int(value: int, verb: str, flags: str, width: int | None,
                prec: int | None) -> str:
    if verb == "c":
        return _pad(chr(value), width, flags)
    if verb == "q":
        return _pad("'" + go_quote(chr(value))[1:-1].replace("'", "\\'")
                    .replace('\\"', '"') + "'", width, flags)
    if verb == "U":
        return _pad(f"U+{value:04X}", width, flags)
    bases = {"v": 10, "d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}
    if verb not in bases:
        return _bad_verb(value, verb)
    base = bases[verb]
    body = {2: "b", 8: "o", 10: "d", 16: "x"}[base]
    digits = format(abs(value), body)
    if verb == "X":
        digits = digits.upper()
    if prec is not None:
        digits = "" if prec == 0 and value == 0 else digits.rjust(prec, "0")
    prefix = ""
    if verb == "O" or ("#" in flags and base == 8 and not digits.startswith("0")):
        prefix = "0o" if verb == "O" else "0"
    elif "#" in flags and base == 16:
        prefix = "0X" if verb == "X" else "0x"
    elif "#" in flags and base == 2:
        prefix = "0b"
    sign = "-" if value < 0 else "+" if "+" in flags else " " if " " in flags else ""
    return _pad_number(sign + prefix, digits, width, flags, prec is None)


def go_sprintf(fmt: str, args: list[Any]) -> str:
    """``fmt.Sprintf`` for the verbs and flags templates use."""
    out: list[str] = []
    i, n, argn = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width: int | None = None
        prec: int | None = None
        if i < n and fmt[i] == "*":
            i += 1
            if argn < len(args) and isinstance(args[argn], int):
                width = args[argn]
                if width < 0:
                    flags, width = flags + "-", -width
            else:
                out.append("%!(BADWIDTH)")
            argn += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            width = int(fmt[start:i]) if i > start else None
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                prec = args[argn] if argn < len(args) and isinstance(args[argn], int) else None
                argn += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[start:i]) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argn >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format(args[argn], verb, flags, width, prec))
        argn += 1
    if argn < len(args):
        extra = ", ".join("<nil>" if a is None else f"{go_type(a)}={go_sprint(a)}"
                          for a in args[argn:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _sprint(args: tuple[Any, ...]) -> str:
    """``fmt.Sprint``: a space between operands when neither side is a string."""
    out: list[str] = []
    prev_str = False
    for i, arg in enumerate(args):
        is_str = isinstance(arg, str)
        if i and not is_str and not prev_str:
            out.append(" ")
        out.append(go_sprint(arg))
        prev_str = is_str
    return "".join(out)


# =========================================================================== functions

class _FuncError(Exception):
    """An error a template function returns (``error calling NAME: ...``)."""


def _go_json(value: Any) -> str:
    """docker's ``json``: compact, no HTML escaping, string maps with sorted keys."""
    import json

    def prepare(v: Any) -> Any:
        if v is MISSING:
            return None
        if isinstance(v, float) and v == v and abs(v) < 1e21 and v == int(v):
            return int(v)
        if isinstance(v, Mapping):
            items = list(v.items())
            if items and all(isinstance(x, str) for _, x in items) and \
                    all(isinstance(k, str) for k, _ in items):
                items.sort()
            return {k: prepare(x) for k, x in items}
        if isinstance(v, list | tuple):
            return [prepare(x) for x in v]
        fields = getattr(v, "__dataclass_fields__", None)
        if fields is not None:
            return {f: prepare(getattr(v, f)) for f in fields}
        return v

    text = json.dumps(prepare(value), ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _is_separator(ch: str) -> bool:
    """strings.Title's word boundary rule."""
    if ch <= "\x7f":
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdigit():
        return False
    return ch.isspace()


def _title(text: str) -> str:
    out, prev = [], " "
    for ch in text:
        if _is_separator(prev):
            up = ch.title()
            out.append(up if len(up) == 1 else ch)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def _case(text: str, upper: bool) -> str:
    """strings.ToUpper/ToLower: rune by rune (no "ß" -> "SS" expansion)."""
    if text.isascii():
        return text.upper() if upper else text.lower()
    out = []
    for ch in text:
        mapped = ch.upper() if upper else ch.lower()
        out.append(mapped if len(mapped) == 1 else ch)
    return "".join(out)


def _pad_fn(text: str, prefix: int, suffix: int) -> str:
    if not text:
        return text
    if prefix < 0 or suffix < 0:
        raise _FuncError("strings: negative Repeat count")
    return " " * prefix + text + " " * suffix


def _truncate(text: str, length: int) -> str:
    raw = text.encode()
    if len(raw) < length:
        return text
    if length < 0:
        raise _FuncError(f"runtime error: slice bounds out of range [:{length}]")
    return raw[:length].decode("utf-8", "ignore")


def _join(items: Any, sep: str) -> str:
    return sep.join(x if isinstance(x, str) else go_sprint(x) for x in (items or ()))


def _split(text: str, sep: str) -> list[str]:
    return text.split(sep) if sep else list(text)


def _length(value: Any) -> int:
    if value is None or value is MISSING:
        raise _FuncError("len of nil pointer")
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple | Mapping):
        return len(value)
    raise _FuncError(f"len of type {go_type(value)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is None or index is MISSING:
        raise _FuncError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _FuncError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index > cap:
        raise _FuncError(f"index out of range: {index}")
    return index


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise _FuncError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise _FuncError("index of nil pointer")
        if isinstance(item, str | list | tuple):
            seq = item.encode() if isinstance(item, str) else item
            x = _index_arg(index, len(seq))
            if x == len(seq):
                raise _FuncError(f"index out of range: {x}")
            item = seq[x]
        elif isinstance(item, Mapping):
            if index is None or index is MISSING:
                index = ""
            if not isinstance(index, str):
                raise _FuncError(f"value has type {go_type(index)}; should be string")
            if index in item:
                item = item[index]
            else:   # the map's zero value: "" for string maps (labels), else nil
                item = "" if all(isinstance(v, str) for v in item.values()) else None
        else:
            raise _FuncError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        seq: Any = item.encode()
    elif isinstance(item, list | tuple):
        seq = item
    else:
        raise _FuncError(f"can't slice item of type {go_type(item)}")
    idx = [0, len(seq), len(seq)]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, len(seq))
    if idx[0] > idx[1]:
        raise _FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = seq[idx[0]:idx[1]]
    return out.decode("utf-8", "ignore") if isinstance(out, bytes) else out


def _kind(value: Any) -> str:
    if value is None or value is MISSING:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
    k1 = _kind(first)
    for other in others:
        k2 = _kind(other)
        if k1 != k2:
            if k1 != "nil" and k2 != "nil":
                raise _FuncError("incompatible types for comparison")
            truth = False
        elif k1 in ("bool", "int", "float", "string"):
            truth = first == other
        elif k1 == "nil":
            truth = True
        else:
            raise _FuncError(f"non-comparable type {go_sprint(other)}: {go_type(other)}")
        if truth:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    k1, k2 = _kind(a), _kind(b)
    if k1 in ("nil", "other") or k2 in ("nil", "other"):
        raise _FuncError("invalid type for comparison")
    if k1 != k2:
        raise _FuncError("incompatible types for comparison")
    if k1 == "bool":
        raise _FuncError("invalid type for comparison")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _html(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(args)
    return (text.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&#34;").replace("\x00", "\ufffd"))


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E",
       "&": "\\u0026", "=": "\\u003D"}


def _js(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(args)
    out = []
    for ch in text:
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " " or ch >= "\x80" and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _urlquery(*args: Any) -> str:
    text = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(args)
    return "".join("+" if b == 0x20 else chr(b) if chr(b) in _URL_SAFE else f"%{b:02X}"
                   for b in text.encode())


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _FuncError(f"non-function of type {go_type(fn)}")
    try:
        return fn(*args)
    except _FuncError:
        raise
    except Exception as exc:    # noqa: BLE001 - reported like Go's returned error
        raise _FuncError(str(exc)) from None


class _Func:
    """A template function: its Python body and Go parameter kinds (any str int strs)."""

    __slots__ = ("fn", "params", "variadic")

    def __init__(self, fn: Callable[..., Any], params: tuple[str, ...],
                 variadic: str | None = None) -> None:
        self.fn, self.params, self.variadic = fn, params, variadic


_ANY1 = ("any",)
BUILTINS: dict[str, _Func] = {
    "and": _Func(lambda *a: a[-1], _ANY1, "any"),      # evaluated lazily in _State
    "or": _Func(lambda *a: a[-1], _ANY1, "any"),
    "not": _Func(lambda v: not _truth(v), _ANY1),
    "len": _Func(_length, _ANY1),
    "index": _Func(_index, _ANY1, "any"),
    "slice": _Func(_slice, _ANY1, "any"),
    "print": _Func(lambda *a: _sprint(a), (), "any"),
    "printf": _Func(lambda f, *a: go_sprintf(f, list(a)), ("str",), "any"),
    "println": _Func(lambda *a: " ".join(go_sprint(x) for x in a) + "\n", (), "any"),
    "eq": _Func(_eq, _ANY1, "any"),
    "ne": _Func(lambda a, b: not _eq(a, b), ("any", "any")),
    "lt": _Func(_lt, ("any", "any")),
    "le": _Func(_le, ("any", "any")),
    "gt": _Func(lambda a, b: not _le(a, b), ("any", "any")),
    "ge": _Func(lambda a, b: not _lt(a, b), ("any", "any")),
    "html": _Func(_html, (), "any"),
    "js": _Func(_js, (), "any"),
    "urlquery": _Func(_urlquery, (), "any"),
    "call": _Func(_call, _ANY1, "any"),
    # docker/cli templates.basicFunctions
    "json": _Func(_go_json, _ANY1),
    "split": _Func(_split, ("str", "str")),
    "join": _Func(_join, ("strs", "str")),
    "title": _Func(_title, ("str",)),
    "lower": _Func(lambda s: _case(s, False), ("str",)),
    "upper": _Func(lambda s: _case(s, True), ("str",)),
    "pad": _Func(_pad_fn, ("str", "int", "int")),
    "truncate": _Func(_truncate, ("str", "int")),
}

# docker/cli templates.HeaderFunctions: keep the header text as it is.
HEADER_FUNCS: dict[str, _Func] = {
    **BUILTINS,
    "json": _Func(lambda v: v, ("str",)),
    "split": _Func(lambda v, _s: v, ("str", "str")),
    "join": _Func(lambda v, _s: v, ("str", "str")),
    "title": _Func(lambda v: v, ("str",)),
    "lower": _Func(lambda v: v, ("str",)),
    "upper": _Func(lambda v: v, ("str",)),
    "truncate": _Func(lambda v, _n: v, ("str", "int")),
}

_GO_PARAM = {"str": "string", "int": "int", "strs": "[]string", "any": "interface {}"}


# =========================================================================== executor

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecError(Exception):
    pass


class _State:
    __slots__ = ("tmpl", "out", "vars", "node", "funcs")

    def __init__(self, tmpl: Template, data: Any, funcs: Mapping[str, _Func]) -> None:
        self.tmpl = tmpl
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", data]]
        self.node: _Node | None = None
        self.funcs = funcs

    # -- errors
    def fail(self, msg: str) -> _ExecError:
        node = self.node
        if node is None:
            return _ExecError(f"template: : {msg}")
        text = self.tmpl.text
        before = text[:node.pos]
        nl = before.rfind("\n")
        line = before.count("\n") + 1
        col = len(before[nl + 1:].encode()) if nl >= 0 else len(before.encode())
        return _ExecError(f'template: :{line}:{col}: executing "" at <{node}>: {msg}')

    # -- variables
    def var_value(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise self.fail(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise self.fail(f"undefined variable: {name}")

    # -- walking
    def walk(self, dot: Any, node: _Node) -> None:
        self.node = node
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.node = node
                self.out.append(_print_value(value))
        elif isinstance(node, _List):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, _Branch):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_with(dot, node)
        elif isinstance(node, _Jump):
            raise _Break() if node.keyword == "break" else _Continue()
        else:   # pragma: no cover
            raise self.fail(f"unknown node: {node}")

    def walk_if_with(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        if _truth(value):
            self.walk(value if node.keyword == "with" else dot, node.body)
        elif node.alt is not None:
            self.walk(dot, node.alt)
        del self.vars[mark:]

    def walk_range(self, dot: Any, node: _Branch) -> None:
        self.node = node
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        body_mark = len(self.vars)
        ndecl = len(node.pipe.decl)

        def one(index: Any, elem: Any) -> bool:
            if ndecl > 0:
                self.vars[-1][1] = elem
            if ndecl > 1:
                self.vars[-2][1] = index
            try:
                self.walk(elem, node.body)
            except _Continue:
                pass
            except _Break:
                return False
            finally:
                del self.vars[body_mark:]
            return True

        ran = False
        if isinstance(value, list | tuple):
            for i, elem in enumerate(value):
                ran = True
                if not one(i, elem):
                    break
        elif isinstance(value, Mapping):
            for key in sorted(value, key=_sort_key):
                ran = True
                if not one(key, value[key]):
                    break
        elif isinstance(value, int) and not isinstance(value, bool):
            if ndecl > 1:
                raise self.fail(f"can't use {value} to iterate over more than one variable")
            for i in range(value):
                ran = True
                if not one(i, i):
                    break
        elif value is not MISSING and value is not None:
            raise self.fail(f"range can't iterate over {go_sprint(value)}")
        if not ran and node.alt is not None:
            self.walk(dot, node.alt)
        del self.vars[mark:]

    # -- evaluation
    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        self.node = pipe
        value = _NOFINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:       # nil interface{} -> invalid value, as Go digs it out
                value = MISSING
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def not_a_function(self, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _NOFINAL:
            raise self.fail(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            self.node = first
            return self.eval_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, _Ident):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Var):
            return self.eval_variable(dot, first, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        self.node = first
        self.not_a_function(cmd.args, final)
        assert isinstance(first, _Literal)
        lit = first
        if lit.kind == "dot":
            return dot
        if lit.kind == "nil":
            raise self.fail("nil is not a command")
        return lit.value

    def eval_variable(self, dot: Any, node: _Var, args: list[_Node] | None, final: Any) -> Any:
        self.node = node
        value = self.var_value(node.idents[0])
        if len(node.idents) == 1:
            if args is not None:
                self.not_a_function(args, final)
            return value
        return self.eval_chain(dot, value, node, node.idents[1:], args, final)

    def eval_chain_node(self, dot: Any, node: _Chain, args: list[_Node] | None,
                        final: Any) -> Any:
        self.node = node
        if isinstance(node.node, _Literal) and node.node.kind == "nil":
            raise self.fail(f"indirection through explicit nil in {node}")
        receiver = self.eval_arg(dot, "any", node.node)
        return self.eval_chain(dot, receiver, node, node.fields, args, final)

    def eval_chain(self, dot: Any, receiver: Any, node: _Node, idents: tuple[str, ...],
                   args: list[_Node] | None, final: Any) -> Any:
        for name in idents[:-1]:
            receiver = self.eval_field(dot, name, node, None, _NOFINAL, receiver)
        return self.eval_field(dot, idents[-1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: _Node, args: list[_Node] | None,
                   final: Any, receiver: Any) -> Any:
        if receiver is MISSING:
            if self.tmpl.missing_error:
                raise self.fail(f"nil data; no entry for key {go_quote(name)}")
            return MISSING
        if receiver is None:
            raise self.fail(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _NOFINAL
        if isinstance(receiver, Mapping):
            if has_args:
                raise self.fail(f"{name} is not a method but has arguments")
            try:
                return receiver[name]
            except KeyError:
                if self.tmpl.missing_error:
                    raise self.fail(f"map has no entry for key {go_quote(name)}") from None
                return MISSING
        if not isinstance(receiver, str | int | float | list | tuple | bytes) and \
                not name.startswith("_"):
            attr = getattr(receiver, name, MISSING)
            if attr is not MISSING:
                if callable(attr) and not isinstance(attr, type):
                    values = [self.eval_arg(dot, "any", a) for a in (args or [])[1:]]
                    if final is not _NOFINAL:
                        values.append(None if final is MISSING else final)
                    try:
                        return attr(*values)
                    except Exception as exc:    # noqa: BLE001 - Go reports method errors
                        self.node = node
                        raise self.fail(f"error calling {name}: {exc}") from None
                if has_args:
                    raise self.fail(f"{name} has arguments but cannot be invoked as function")
                return attr
        receiver_type = "interface {}" if receiver is not self.vars[0][1] else go_type(receiver)
        raise self.fail(f"can't evaluate field {name} in type {receiver_type}")

    def eval_function(self, dot: Any, ident: _Ident, cmd: _Node, args: list[_Node] | None,
                      final: Any) -> Any:
        self.node = ident
        name = ident.name
        func = self.funcs[name]
        argnodes = (args or [])[1:]
        nin = len(argnodes) + (final is not _NOFINAL)
        nfixed = len(func.params)
        if func.variadic is None and nin != nfixed:
            raise self.fail(f"wrong number of args for {name}: want {nfixed} got {nin}")
        if func.variadic is not None and nin < nfixed:
            raise self.fail(f"wrong number of args for {name}: want at least {nfixed} got "
                            f"{len(argnodes)}")
        if name in ("and", "or") and func is BUILTINS[name]:
            want = name == "or"
            value: Any = None
            for arg in argnodes:
                value = self.eval_arg(dot, "any", arg)
                if _truth(value) == want:
                    return value
            if final is not _NOFINAL:
                value = None if final is MISSING else final
            return value
        values = []
        for i, arg in enumerate(argnodes):
            kind = func.params[i] if i < nfixed else func.variadic
            values.append(self.eval_arg(dot, kind or "any", arg))
        if final is not _NOFINAL:
            kind = func.params[nin - 1] if nin - 1 < nfixed else func.variadic
            values.append(self.validate(final, kind or "any"))
        try:
            return func.fn(*values)
        except _FuncError as exc:
            self.node = cmd
            raise self.fail(f"error calling {name}: {exc}") from None

    def validate(self, value: Any, kind: str) -> Any:
        if value is MISSING or value is None:
            if kind in ("any", "strs"):
                return None
            raise self.fail(f"invalid value; expected {_GO_PARAM[kind]}")
        if kind == "str" and not isinstance(value, str) or \
                kind == "int" and (not isinstance(value, int) or isinstance(value, bool)) or \
                kind == "strs" and not isinstance(value, list | tuple):
            raise self.fail(f"wrong type for value; expected {_GO_PARAM[kind]}; got "
                            f"{go_type(value)}")
        return value

    def eval_arg(self, dot: Any, kind: str, node: _Node) -> Any:
        self.node = node
        if isinstance(node, _Field):
            return self.validate(self.eval_chain(dot, dot, node, node.idents, [node], _NOFINAL),
                                 kind)
        if isinstance(node, _Var):
            return self.validate(self.eval_variable(dot, node, None, _NOFINAL), kind)
        if isinstance(node, _Pipe):
            return self.validate(self.eval_pipeline(dot, node), kind)
        if isinstance(node, _Ident):
            return self.validate(self.eval_function(dot, node, node, None, _NOFINAL), kind)
        if isinstance(node, _Chain):
            return self.validate(self.eval_chain_node(dot, node, None, _NOFINAL), kind)
        assert isinstance(node, _Literal)
        lit = node
        if lit.kind == "dot":
            return self.validate(dot, kind)
        if lit.kind == "nil":
            if kind in ("any", "strs"):
                return None
            raise self.fail(f"cannot assign nil to {_GO_PARAM[kind]}")
        if kind == "any":
            return lit.value
        if kind == "str":
            if lit.kind != "string":
                raise self.fail(f"expected string; found {lit}")
            return lit.value
        if kind == "int":
            if lit.kind != "number" or not lit.is_int:
                raise self.fail(f"expected integer; found {lit}")
            return int(lit.value)
        raise self.fail(f"can't handle {lit} for arg of type {_GO_PARAM[kind]}")


# =========================================================================== API

class Template:
    """A compiled template; :func:`render` executes it against one item."""

    __slots__ = ("text", "root", "missing_error", "_fast")

    def __init__(self, text: str, root: _List, missing_error: bool) -> None:
        self.text = text
        self.root = root
        self.missing_error = missing_error
        self._fast: tuple[str, ...] | str | None = None
        only = root.nodes[0] if len(root.nodes) == 1 else None
        if not root.nodes:
            self._fast = ""
        elif isinstance(only, _Text):
            self._fast = only.text
        elif isinstance(only, _Action):     # a lone {{.A.B}}: dict lookups, no walk
            pipe = only.pipe
            arg = pipe.cmds[0].args[0] if len(pipe.cmds) == 1 else None
            if not pipe.decl and len(pipe.cmds[0].args) == 1 and isinstance(arg, _Field):
                self._fast = arg.idents

    def render(self, data: Any, *, funcs: Mapping[str, _Func] = BUILTINS) -> str:
        fast = self._fast
        if type(fast) is str:
            return fast
        if fast is not None and funcs is BUILTINS:
            value = data
            for name in fast:
                if type(value) is not dict:
                    break
                value = value.get(name, MISSING)
                if value is MISSING:
                    break
            else:
                return _print_value(value)
            if value is MISSING and not self.missing_error and type(data) is dict:
                return "<no value>"
        state = _State(self, MISSING if data is None else data, funcs)
        try:
            state.walk(state.vars[0][1], self.root)
        except _ExecError as exc:
            raise TemplateError(_PREFIX + str(exc)) from None
        except (_Break, _Continue):     # pragma: no cover - parser rejects these
            pass
        return "".join(state.out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def compile_template(text: str, *, missing_key: str = "default") -> Template:
    """Parse ``text`` once (Go's ``template.New("").Funcs(docker's).Parse``).

    ``missing_key="error"`` is Go's ``missingkey=error`` (docker's raw ``inspect``
    fallback); the default prints ``<no value>`` for a missing map key.
    """
    if missing_key not in ("default", "invalid", "zero", "error"):
        raise InvalidArgument(f'unrecognized option "missingkey={missing_key}"')
    try:
        root = _Parser(text, BUILTINS).parse()
    except _ParseError as exc:
        raise TemplateError(_PREFIX + str(exc)) from None
    return Template(text, root, missing_key == "error")


def render(tmpl: Template | str, data: Any) -> str:
    """Execute a compiled template (or compile ``tmpl`` first) against ``data``."""
    if isinstance(tmpl, str):
        tmpl = compile_template(tmpl)
    return tmpl.render(data)


def render_header(tmpl: Template, headers: Mapping[str, str]) -> str:
    """A table's header row: the template run on {field: "HEADER"} with docker's
    ``HeaderFunctions`` (``{{upper .Names}}`` keeps ``NAMES``)."""
    return tmpl.render(headers, funcs=HEADER_FUNCS)


def is_table(fmt: str) -> bool:
    """docker's ``Format.IsTable``: the format starts with ``table``."""
    return fmt.startswith("table")


def strip_table(fmt: str) -> str:
    """The template after the ``table`` keyword, trimmed of spaces as docker does."""
    return (fmt[5:] if fmt.startswith("table") else fmt).strip(" ")


def expand_escapes(fmt: str) -> str:
    """docker's ``--format`` replacer: the two characters ``\\t`` and ``\\n`` -> tab, newline."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


__all__ = ["Template", "TemplateError", "MISSING", "compile_template", "render",
           "render_header", "is_table", "strip_table", "expand_escapes", "go_sprint",
           "go_sprintf", "go_float", "go_type", "BUILTINS", "HEADER_FUNCS"]

go_str = go_sprint     # the name the first stub exported
