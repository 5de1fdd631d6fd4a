"""TarReader against tarfile and GNU tar: same members, same data; strict on damage."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from sdk.diff.tarstream import TarReader, parse_pax

LONG = "d" * 60 + "/" + "e" * 70 + "/" + "f" * 90


def sample(fmt: int) -> bytes:
    buf = io.BytesIO()
    pax = {"comment": "global"} if fmt == tarfile.PAX_FORMAT else None
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: object):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = 1_600_000_000
            for k, v in kw.items():
                setattr(info, k, v)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("dir", tarfile.DIRTYPE, mode=0o755)
        add("dir/small", data=b"hello", mode=0o644, uid=1, gid=2)
        add("dir/big", data=os.urandom(70_001))
        add("empty")
        add("sym", tarfile.SYMTYPE, linkname="dir/small")
        add("hard", tarfile.LNKTYPE, linkname="dir/small")
        add("dev", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("fifo", tarfile.FIFOTYPE)
        if fmt != tarfile.USTAR_FORMAT:
            add(LONG, data=b"long")
            add("longlink", tarfile.SYMTYPE, linkname="/" + LONG)
            add("bigid", data=b"x", uid=2**22, gid=2**22)
            add("caf\u00e9-\udcff", data=b"names")
    return buf.getvalue()


def read_ours(data: bytes) -> list[tuple[object, ...]]:
    out = []
    reader = TarReader(io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
    for m in reader:
        buf = bytearray(1000)
        body = b""
        while n := reader.readinto(memoryview(buf)):
            body += bytes(buf[:n])
        out.append((m.name, m.type, m.linkname, m.size if m.isreg() else 0, m.mode, m.uid,
                    m.gid, int(m.mtime), m.devmajor, m.devminor, body))
    return out


def read_tarfile(data: bytes) -> list[tuple[object, ...]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        for m in tar:
            body = tar.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            out.append((m.name, m.type, m.linkname, m.size if m.isreg() else 0, m.mode,
                        m.uid, m.gid, int(m.mtime), m.devmajor, m.devminor, body))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_same_members_as_tarfile(fmt: int) -> None:
    data = sample(fmt)
    assert read_ours(data) == read_tarfile(data)


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7"])
def test_gnu_tar_archives(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_bytes(os.urandom(5000))
    (src / "link").symlink_to("sub/file")
    os.link(src / "sub" / "file", src / "hard")
    if fmt != "ustar" and fmt != "v7":
        deep = src / ("x" * 80) / ("y" * 80)
        deep.mkdir(parents=True)
        (deep / "z").write_text("deep")
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", f"--format={fmt}", "-C", str(src), "-cf", str(archive), "."],
                   check=True)
    data = archive.read_bytes()
    assert read_ours(data) == read_tarfile(data)


def test_pax_records() -> None:
    assert parse_pax(b"11 path=ab\n13 mtime=1.5\n\0\0") == {"path": "ab", "mtime": "1.5"}
    for bad in (b"99 path=x\n", b"x path=y\n", b"10 pathxx\n", b"5 a=b\n"):
        with pytest.raises(tarfile.ReadError):
            parse_pax(bad)


@pytest.mark.parametrize("damage", ["truncated-header", "truncated-data", "bad-checksum",
                                    "pax-then-eof"])
def test_damage_is_an_error(damage: str) -> None:
    data = sample(tarfile.PAX_FORMAT)
    if damage == "truncated-header":
        data = data[:512 * 3 + 100]
    elif damage == "truncated-data":
        data = data[:len(data) // 2]
    elif damage == "bad-checksum":
        pos = data.index(b"dir/small")
        data = data[:pos] + b"X" + data[pos + 1:]
    else:
        buf = io.BytesIO()
        info = tarfile.TarInfo("x")
        info.pax_headers = {"path": "y" * 200}
        buf.write(info.tobuf(tarfile.PAX_FORMAT)[:-512])
        data = buf.getvalue()
    with pytest.raises(tarfile.ReadError):
        read_ours(data)


def test_clean_end_without_zero_blocks_and_sparse_refused(tmp_path: Path) -> None:
    data = sample(tarfile.GNU_FORMAT)
    end = data.rindex(b"names") + 512
    assert read_ours(data[:end]) == read_ours(data)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as fh:
        fh.seek(10 << 20)
        fh.write(b"end")
    archive = tmp_path / "s.tar"
    subprocess.run(["tar", "--sparse", "-C", str(tmp_path), "-cf", str(archive), "sparse"],
                   check=True)
    with pytest.raises(tarfile.ReadError, match="sparse"):
        read_ours(archive.read_bytes())
