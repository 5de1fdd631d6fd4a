"""Line edits of a container's hosts file: in place, deduplicated, exact removal."""

from __future__ import annotations

import os
from pathlib import Path

from sdk.network.hostsfile import add_lines, hosts_line, remove_lines, rewrite

BASE = "127.0.0.1\tlocalhost\n10.0.0.2\tself\n"


def test_add_and_remove_keep_the_inode_and_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    rewrite(path, BASE)
    inode = os.stat(path).st_ino
    a, b = hosts_line("10.0.0.3", ["a", "abc", "alias"]), hosts_line("10.0.0.4", ["b"])
    assert a == "10.0.0.3\ta abc alias\n"
    assert add_lines(path, [a, b, a])
    assert add_lines(path, [a])                     # already there: not added twice
    assert path.read_text() == BASE + a + b
    assert remove_lines(path, [a, hosts_line("10.0.0.9", ["gone"])])
    assert path.read_text() == BASE + b
    assert os.stat(path).st_ino == inode            # bind-mounted: same file throughout


def test_remove_drops_duplicates_and_only_exact_lines(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    b = hosts_line("10.0.0.4", ["b"])
    rewrite(path, BASE + b + "10.0.0.4\tb-extra\n" + b)
    remove_lines(path, [b])
    assert path.read_text() == BASE + "10.0.0.4\tb-extra\n"


def test_missing_file_and_unterminated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    assert not add_lines(path, ["x\n"]) and not remove_lines(path, ["x\n"])
    assert not path.exists()
    path.write_text("127.0.0.1\tlocalhost")        # no final newline
    add_lines(path, [hosts_line("10.0.0.5", ["c"])])
    assert path.read_text() == "127.0.0.1\tlocalhost\n10.0.0.5\tc\n"
