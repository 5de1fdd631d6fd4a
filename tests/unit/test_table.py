"""docker's tabwriter layout (minwidth 10, tabwidth 1, padding 3, padchar ' ')."""

from __future__ import annotations

from sdk.cli.table import render_table, tabwrite


def test_volume_ls_layout() -> None:
    out = render_table(["DRIVER", "VOLUME NAME"], [["local", "data"], ["local", "x" * 30]])
    assert out == ("DRIVER    VOLUME NAME\n"
                   "local     data\n"
                   f"local     {'x' * 30}\n")


def test_ps_layout_pads_to_widest_plus_three() -> None:
    out = render_table(
        ["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"],
        [["4c01db0b339c", "busybox", '"sh"', "Up 3 minutes", "jolly_knuth"],
         ["d7886598dbe2", "busybox:latest", '"top"', "Exited (0) 5 seconds ago", "x"]])
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE            COMMAND   STATUS                     NAMES",
        '4c01db0b339c   busybox          "sh"      Up 3 minutes               jolly_knuth',
        'd7886598dbe2   busybox:latest   "top"     Exited (0) 5 seconds ago   x',
    ]


def test_empty_cells_and_no_rows() -> None:
    assert render_table(["A", "B", "C"], []) == "A         B         C\n"
    assert render_table(["A", "B", "C"], [["", "", ""]]) == \
        "A         B         C\n                    \n"


def test_top_minwidth_twenty() -> None:
    out = render_table(["UID", "PID", "CMD"], [["root", "1", "sh"]], minwidth=20)
    assert out.splitlines() == ["UID                 PID                 CMD",
                                "root                1                   sh"]


def test_go_doc_example_column_blocks() -> None:
    # text/tabwriter's package example: b and c are in distinct column blocks
    text = "aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n"
    assert tabwrite(text, minwidth=0, padding=1) == \
        "aaaa bbb d\naa   b   dd\na    \naa   cccc eee\n"


def test_single_cell_line_flushes_blocks() -> None:
    assert tabwrite("a\tb\nline\nlonger\tc\n", minwidth=0, padding=1) == \
        "a b\nline\nlonger c\n"


def test_trailing_text_without_newline_and_align_right() -> None:
    assert tabwrite("a\tb", minwidth=0, padding=2) == "a  b"
    assert tabwrite("a\tb\nccc\td\n", minwidth=0, padding=1, align_right=True) == \
        "   ab\n cccd\n"


def test_tab_padding() -> None:
    assert tabwrite("a\tb\nabcdefghij\tc\n", minwidth=0, tabwidth=8, padding=1,
                    padchar="\t") == "a\t\tb\nabcdefghij\tc\n"


def test_wide_characters_count_double() -> None:
    assert render_table(["名前", "B"], [["x", "y"]]) == "名前      B\nx         y\n"
    assert render_table(["NAME", "B"], [["é" * 12, "y"]]) == \
        f"NAME           B\n{'é' * 12}   y\n"


def test_rectangular_fast_path_matches_tabwriter() -> None:
    import random

    from sdk.cli.table import render_table, tabwrite

    rng = random.Random(7)
    alphabet = "ab c-é漢"
    for _ in range(200):
        ncol = rng.randint(2, 6)
        headers = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
                   for _ in range(ncol)]
        rows = [["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
                 for _ in range(ncol)] for _ in range(rng.randint(0, 6))]
        for minwidth in (10, 20):
            text = "\t".join(headers) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
            assert render_table(headers, rows, minwidth=minwidth) == \
                tabwrite(text, minwidth=minwidth)
