"""docker's tabwriter layout: columns padded to their widest cell plus 3 spaces."""

from __future__ import annotations


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    table = [headers] + rows
    if not table:
        return ""
    ncols = max(len(r) for r in table)
    widths = [0] * ncols
    for r in table:
        for i, cell in enumerate(r):
            if i < ncols - 1:
                widths[i] = max(widths[i], len(cell))
    lines = []
    for r in table:
        cells = [cell.ljust(widths[i] + 3) if i < len(r) - 1 else cell
                 for i, cell in enumerate(r)]
        lines.append("".join(cells))
    return "\n".join(lines) + "\n"
