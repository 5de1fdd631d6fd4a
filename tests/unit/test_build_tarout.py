"""The builder's fast tar writer gives the bytes tarfile (PAX format) gives."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from sdk.build.tarout import DIRTYPE, FIFOTYPE, REGTYPE, SYMTYPE, TarOut, ustar_header

TYPES = {REGTYPE: tarfile.REGTYPE, DIRTYPE: tarfile.DIRTYPE, SYMTYPE: tarfile.SYMTYPE,
         FIFOTYPE: tarfile.FIFOTYPE}


def _tarfile_header(name: str, mode: int, uid: int, gid: int, size: int, mtime: int,
                    typeflag: bytes, linkname: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, gid, size, mtime
    info.type, info.linkname = TYPES[typeflag], linkname
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("entry", [
    ("a", 0o644, 0, 0, 5, 1_700_000_000, REGTYPE, ""),
    ("srv/tree/d00/f00001.txt", 0o4755, 1000, 1000, 123456789, 0, REGTYPE, ""),
    ("x" * 100, 0o600, 7, 8, 0, 1, REGTYPE, ""),
    ("dir", 0o755, 0, 0, 0, 1_700_000_000, DIRTYPE, ""),
    ("d" * 99, 0o1777, 0, 0, 0, 5, DIRTYPE, ""),
    ("link", 0o777, 0, 0, 0, 9, SYMTYPE, "../target/with/a/path"),
    ("l", 0o777, 0, 0, 0, 9, SYMTYPE, "t" * 100),
    ("fifo", 0o644, 0, 0, 0, 9, FIFOTYPE, ""),
    ("big", 0o644, 8 ** 7 - 1, 8 ** 7 - 1, 8 ** 11 - 1, 8 ** 11 - 1, REGTYPE, ""),
])
def test_header_is_tarfiles(entry: tuple) -> None:
    ours = ustar_header(*entry)
    assert ours is not None
    assert ours == _tarfile_header(*entry)


@pytest.mark.parametrize("entry", [
    ("x" * 101, 0o644, 0, 0, 0, 0, REGTYPE, ""),     # needs a PAX path
    ("d" * 100, 0o755, 0, 0, 0, 0, DIRTYPE, ""),     # 101 with its slash
    ("caf\u00e9", 0o644, 0, 0, 0, 0, REGTYPE, ""),   # not ASCII
    ("l", 0o777, 0, 0, 0, 0, SYMTYPE, "t" * 101),
    ("u", 0o644, 8 ** 7, 0, 0, 0, REGTYPE, ""),      # uid too big for the field
    ("s", 0o644, 0, 0, 8 ** 11, 0, REGTYPE, ""),     # 8 GiB
    ("m", 0o644, 0, 0, 0, -1, REGTYPE, ""),
])
def test_header_refuses_what_needs_pax(entry: tuple) -> None:
    assert ustar_header(*entry) is None


def test_stream_is_tarfiles(tmp_path: Path) -> None:
    """Whole streams, with file data, PAX fallbacks and the end padding."""
    files = {"small": b"hello\n", "empty": b"", "block": b"x" * 512,
             "odd": os.urandom(3 * (1 << 20) + 17)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    entries = [("top", 0o755, 0, 0, 10, DIRTYPE, "", None)]
    entries += [(f"top/{n}", 0o640, 1, 2, 11, REGTYPE, "", str(tmp_path / n))
                for n in files]
    entries += [("top/" + "long" * 40, 0o644, 0, 0, 12, REGTYPE, "", str(tmp_path / "small")),
                ("top/\u00e9t\u00e9", 0o644, 0, 0, 12, REGTYPE, "", str(tmp_path / "small")),
                ("top/ln", 0o777, 0, 0, 13, SYMTYPE, "small", None),
                ("top/p", 0o600, 0, 0, 14, FIFOTYPE, "", None)]
    ours = io.BytesIO()
    out = TarOut(ours)
    for name, mode, uid, gid, mtime, kind, link, path in entries:
        size = os.path.getsize(path) if path else 0
        out.entry(name, mode, uid, gid, mtime, kind, size=size, linkname=link, path=path)
    out.close()
    theirs = io.BytesIO()
    with tarfile.open(fileobj=theirs, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, uid, gid, mtime, kind, link, path in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
            info.type, info.linkname, info.uname, info.gname = TYPES[kind], link, "", ""
            if path:
                info.size = os.path.getsize(path)
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    assert ours.getvalue() == theirs.getvalue()


def test_a_file_that_shrinks_while_copied_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    out = TarOut(io.BytesIO())
    with pytest.raises(OSError, match="changed size"):
        out.entry("f", 0o644, 0, 0, 0, REGTYPE, size=10, path=str(path))


def test_member_keeps_pax_records() -> None:
    info = tarfile.TarInfo("a")
    info.size = 3
    info.pax_headers = {"SCHILY.xattr.user.k": "v"}
    ours = io.BytesIO()
    out = TarOut(ours)
    out.member(info, io.BytesIO(b"abc"))
    out.close()
    with tarfile.open(fileobj=io.BytesIO(ours.getvalue())) as tar:
        member = tar.next()
        assert member is not None and member.pax_headers["SCHILY.xattr.user.k"] == "v"
        assert tar.extractfile(member).read() == b"abc"  # type: ignore[union-attr]
