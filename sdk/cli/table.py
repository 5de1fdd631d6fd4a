"""docker's table layout: Go's ``text/tabwriter`` (elastic tabstops), as docker/cli uses it.

docker's formatter writes ``header\\n`` then one ``cell\\tcell\\t...\\n`` line per row
through ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: each tab-terminated cell is padded
to the widest cell of its column block plus 3 spaces, at least 10 columns wide; the last
cell of a line is not padded.  ``docker top`` uses a minimum width of 20.  docker's
vendored tabwriter measures cells in terminal columns (East Asian wide characters count 2,
combining marks 0), and so does this module.
"""

from __future__ import annotations

from collections.abc import Sequence


def _width(text: str) -> int:
    if text.isascii():
        return len(text)
    import unicodedata

    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf") or \
                ch < " ":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def tabwrite(text: str, *, minwidth: int = 10, tabwidth: int = 1, padding: int = 3,
             padchar: str = " ", align_right: bool = False) -> str:
    """Format tab-separated ``text`` exactly like a flushed Go ``tabwriter.Writer``.

    Cells end at ``\\t`` (or ``\\v``); lines end at ``\\n`` (``\\f`` also ends all column
    blocks).  A column block is a run of consecutive lines that have a tab-terminated
    cell in that column; its width is the widest cell + ``padding`` (at least
    ``minwidth``).  A line with a single cell ends every block.
    """
    lines: list[list[tuple[str, int]]] = []
    out: list[str] = []
    line: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        j = i
        while j < n and text[j] not in "\t\v\n\f":
            j += 1
        if j == n:
            break
        content = text[i:j]
        line.append((content, _width(content)))
        if text[j] in "\n\f":
            lines.append(line)
            if text[j] == "\f" or len(line) == 1:     # nothing can align past this line
                _format_block(lines, 0, len(lines), [], out, minwidth, tabwidth, padding,
                              padchar, align_right)
                lines.clear()
            line = []
        i = j + 1
    if i < n:
        content = text[i:]
        line.append((content, _width(content)))
    lines.append(line)
    _format_block(lines, 0, len(lines), [], out, minwidth, tabwidth, padding, padchar,
                  align_right, last_open=True)
    return "".join(out)


def _format_block(lines: list[list[tuple[str, int]]], line0: int, line1: int,
                  widths: list[int], out: list[str], minwidth: int, tabwidth: int,
                  padding: int, padchar: str, align_right: bool,
                  last_open: bool = False) -> None:
    """Go's ``Writer.format``: recursive column blocks, then ``writeLines``."""
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out, tabwidth, padchar, align_right,
                     last_open)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, lines[this][column][1] + padding)
            this += 1
        widths.append(width)
        _format_block(lines, line0, this, widths, out, minwidth, tabwidth, padding,
                      padchar, align_right, last_open)
        widths.pop()
        line0 = this
    _write_lines(lines, line0, line1, widths, out, tabwidth, padchar, align_right,
                 last_open)


def _write_lines(lines: list[list[tuple[str, int]]], line0: int, line1: int,
                 widths: list[int], out: list[str], tabwidth: int, padchar: str,
                 align_right: bool, last_open: bool) -> None:
    for i in range(line0, line1):
        for j, (content, width) in enumerate(lines[i]):
            pad = ""
            if j < len(widths):
                cellw = widths[j]
                if padchar == "\t":
                    if tabwidth:
                        cellw = -(-cellw // tabwidth) * tabwidth
                        pad = "\t" * -(-(cellw - width) // tabwidth)
                else:
                    pad = padchar * (cellw - width)
            out.append(pad + content if align_right and padchar != "\t" else content + pad)
        if not (last_open and i + 1 == len(lines)):
            out.append("\n")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                 minwidth: int = 10, padding: int = 3) -> str:
    """``docker ps``-style table: a header line and one line per row.

    ``minwidth=20`` gives ``docker top``'s layout.
    """
    fast = _rectangular(headers, rows, minwidth, padding)
    if fast is not None:
        return fast
    text = "\t".join(headers) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    return tabwrite(text, minwidth=minwidth, padding=padding)


def _rectangular(headers: Sequence[str], rows: Sequence[Sequence[str]], minwidth: int,
                 padding: int) -> str | None:
    """The common case in one pass: every row has every column and no cell holds a
    tab or line break, so each column is a single tabwriter block (same output)."""
    ncol = len(headers)
    if ncol < 2 or any(len(r) != ncol for r in rows):
        return None
    table = [list(headers), *[list(r) for r in rows]]
    columns = list(zip(*table, strict=True))
    joined = ["".join(col) for col in columns]
    if any("\t" in j or "\n" in j or "\v" in j or "\f" in j for j in joined):
        return None
    ascii_cols = [j.isascii() for j in joined]
    cols = []
    for j in range(ncol - 1):
        widest = max(map(len if ascii_cols[j] else _width, columns[j]))
        cols.append(max(minwidth, widest + padding))
    if all(ascii_cols[:-1]):      # the usual table: pad with str.ljust (width == len)
        return "".join("".join(c.ljust(w) for c, w in zip(r[:-1], cols, strict=True))
                       + r[-1] + "\n" for r in table)
    out = []
    for r in table:
        out.append("".join(r[j] + " " * (cols[j] - _width(r[j])) for j in range(ncol - 1))
                   + r[-1] + "\n")
    return "".join(out)


__all__ = ["render_table", "tabwrite"]
