"""apply_layer without root: digests, compression, the malicious-tar corpus, whiteouts
in delete mode, replacement rules.  ``make_tar`` and friends are shared with the root
tests."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import random
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sdk.diff.apply import apply_layer, clean_name, layer_digest, open_decompressed
from sdk.errors import FailedPrecondition, InvalidArgument

MTIME = 1_600_000_000


# ---- tar building (shared with tests/root) ----------------------------------------------
@dataclass
class E:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    mtime: int = MTIME
    xattrs: dict[str, bytes] = field(default_factory=dict)
    dev: tuple[int, int] = (0, 0)


def f(name: str, data: bytes = b"", **kw: object) -> E:
    return E(name, data=data, **kw)  # type: ignore[arg-type]


def d(name: str, mode: int = 0o755, **kw: object) -> E:
    return E(name, tarfile.DIRTYPE, mode=mode, **kw)  # type: ignore[arg-type]


def sym(name: str, target: str) -> E:
    return E(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hard(name: str, target: str) -> E:
    return E(name, tarfile.LNKTYPE, linkname=target)


def wh(path: str) -> E:
    parent, _, name = path.rpartition("/")
    return f(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opq(directory: str) -> E:
    return f(f"{directory}/.wh..wh..opq")


def make_tar(entries: list[E]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.mode, info.linkname = e.type, e.mode, e.linkname
            info.uid, info.gid, info.mtime = e.uid, e.gid, e.mtime
            info.devmajor, info.devminor = e.dev
            for key, value in e.xattrs.items():
                info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8",
                                                                       "surrogateescape")
            if e.type == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def apply_bytes(data: bytes, target: Path, whiteouts: str = "delete", **kw: object):
    target.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(data), target, whiteouts=whiteouts, **kw)  # type: ignore


def tree(root: Path) -> dict[str, str]:
    """path -> short description (type + content/target) of everything below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = "file " + Path(full).read_bytes().decode(errors="replace")
            else:
                out[rel] = f"special {st.st_mode:o}"
    return out


# ---- digests and compression ----------------------------------------------------------
BASIC = [d("etc"), f("etc/hosts", b"127.0.0.1 localhost\n"), sym("etc/mtab", "/proc/mounts"),
         d("bin"), f("bin/sh", b"#!" + b"x" * 5000, mode=0o755), hard("bin/ash", "bin/sh")]


@pytest.mark.parametrize("compress", [
    lambda b: b, gzip.compress, bz2.compress, lzma.compress,
], ids=["plain", "gzip", "bzip2", "xz"])
def test_diff_id_is_sha256_of_uncompressed_tar(tmp_path: Path, compress) -> None:
    plain = make_tar(BASIC)
    result = apply_bytes(compress(plain), tmp_path / "t")
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.size == len(plain)
    assert result.content_size == len(b"#!" + b"x" * 5000) + 20 + len("/proc/mounts")
    assert layer_digest(io.BytesIO(compress(plain))).diff_id == result.diff_id
    t = tree(tmp_path / "t")
    assert t["etc/hosts"] == "file 127.0.0.1 localhost\n" and t["etc/mtab"] == "-> /proc/mounts"
    assert os.stat(tmp_path / "t/bin/ash").st_ino == os.stat(tmp_path / "t/bin/sh").st_ino


def test_trailing_data_after_the_tar_is_hashed(tmp_path: Path) -> None:
    plain = make_tar(BASIC) + b"\0" * 4096
    assert apply_bytes(plain, tmp_path / "t").diff_id == \
        "sha256:" + hashlib.sha256(plain).hexdigest()


def test_empty_stream_is_an_empty_layer(tmp_path: Path) -> None:
    result = apply_bytes(b"", tmp_path / "t")
    assert result.diff_id == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert result.size == 0 and not os.listdir(tmp_path / "t")


def test_short_reads_from_a_pipe_like_stream(tmp_path: Path) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:  # type: ignore[override]
            n = min(len(buf), 3, len(self.data))
            buf[:n] = self.data[:n]
            self.data = self.data[n:]
            return n

    plain = make_tar(BASIC)
    result = apply_layer(Trickle(gzip.compress(plain)), tmp_path, whiteouts="delete")  # type: ignore
    assert result.size == len(plain)
    assert open_decompressed(Trickle(plain)).read() == plain  # type: ignore[arg-type]


def test_zstd_without_module_is_a_clear_error(tmp_path: Path) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(FailedPrecondition, match="zstandard"):
            apply_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 64, tmp_path / "t")
    else:
        pytest.skip("zstandard is installed")


@pytest.mark.parametrize("data", [
    gzip.compress(make_tar(BASIC))[:-30],            # truncated gzip
    b"\x1f\x8b" + b"garbage" * 20,                    # bad gzip
    bz2.compress(make_tar(BASIC))[:200],               # truncated bzip2
    make_tar(BASIC)[:1000],                            # truncated tar
    b"this is not a tar file at all" * 40,
], ids=["gzip-truncated", "gzip-bad", "bzip2-truncated", "tar-truncated", "garbage"])
def test_corrupt_streams_are_invalid_argument(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        apply_bytes(data, tmp_path / "t")


# ---- the malicious corpus -----------------------------------------------------------
@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(target, sentinel): nothing may ever appear outside target."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("original")
    (tmp_path / "target").mkdir()
    return tmp_path / "target", sentinel


def assert_untouched(target: Path, sentinel: Path) -> None:
    assert sorted(os.listdir(target.parent)) == ["sentinel", "target"]
    assert os.listdir(sentinel) == ["keep"]
    assert (sentinel / "keep").read_text() == "original"


@pytest.mark.parametrize("entries, bad", [
    ([f("../etc/passwd", b"x")], "../etc/passwd"),
    ([f("../sentinel/keep", b"x")], "../sentinel/keep"),
    ([d("a"), f("a/../../sentinel/x", b"x")], "a/../../sentinel/x"),
    ([sym("evil", "/"), f("evil/etc/x", b"x")], "evil/etc/x"),
    ([sym("evil", "../sentinel"), f("evil/x", b"x")], "evil/x"),
    ([sym("up", ".."), f("up/sentinel/keep", b"pwned")], "up/sentinel/keep"),
    ([d("a"), sym("a/up", "../.."), d("a/up/sentinel"), f("a/up/sentinel/x", b"x")],
     "a/up/sentinel"),
    ([sym("evil", "../sentinel"), d("evil/sub")], "evil/sub"),
    ([sym("evil", "../sentinel"), wh("evil/keep")], "evil/.wh.keep"),
    ([sym("evil", "../sentinel"), opq("evil")], "evil/.wh..wh..opq"),
    ([f("file", b"x"), f("file/x", b"x")], "file/x"),
    ([hard("h", "/etc/shadow")], "h"),
    ([hard("h", "../sentinel/keep")], "h"),
    ([hard("h", "../../etc/passwd")], "h"),
    ([sym("evil", "../sentinel"), hard("h", "evil/keep")], "h"),
    ([d("dir"), hard("h", "dir")], "h"),
], ids=["dotdot", "dotdot-sentinel", "inner-dotdot", "symlink-root", "symlink-sentinel",
        "symlink-parent", "nested-symlink-parent", "dir-through-symlink",
        "whiteout-through-symlink", "opaque-through-symlink", "file-as-parent",
        "hardlink-abs-missing", "hardlink-dotdot", "hardlink-dotdot2",
        "hardlink-through-symlink", "hardlink-to-dir"])
def test_malicious_tars_are_refused(sandbox: tuple[Path, Path], entries: list[E],
                                    bad: str) -> None:
    target, sentinel = sandbox
    with pytest.raises(InvalidArgument) as err:
        apply_bytes(make_tar(entries), target)
    assert repr(bad) in str(err.value)
    assert_untouched(target, sentinel)


def test_absolute_names_are_confined_like_docker(sandbox: tuple[Path, Path]) -> None:
    target, sentinel = sandbox
    apply_bytes(make_tar([f("/abs", b"a"), f("/../../sentinel/keep", b"b"),
                          d("/etc/"), f("//etc//x", b"c")]), target)
    assert tree(target) == {"abs": "file a", "sentinel": "dir", "sentinel/keep": "file b",
                            "etc": "dir", "etc/x": "file c"}
    assert_untouched(target, sentinel)


def test_an_entry_replaces_a_symlink_instead_of_writing_through_it(
        sandbox: tuple[Path, Path]) -> None:
    target, sentinel = sandbox
    apply_bytes(make_tar([sym("f", "../sentinel/keep"), f("f", b"new"),
                          sym("g", "../sentinel"), d("g"), f("g/x", b"x")]), target)
    assert tree(target) == {"f": "file new", "g": "dir", "g/x": "file x"}
    assert_untouched(target, sentinel)


def test_symlinks_may_point_anywhere(sandbox: tuple[Path, Path]) -> None:
    target, sentinel = sandbox
    apply_bytes(make_tar([sym("root", "/"), sym("up", "../../../.."),
                          sym("s", "../sentinel/keep")]), target)
    assert tree(target) == {"root": "-> /", "up": "-> ../../../..",
                            "s": "-> ../sentinel/keep"}
    assert_untouched(target, sentinel)


def test_lower_layer_symlink_parent_becomes_a_directory(sandbox: tuple[Path, Path]) -> None:
    """vfs applies onto a copy of the parent: a lower symlink in the way of a new entry
    is replaced by a directory (what overlayfs shows), never followed."""
    target, sentinel = sandbox
    os.symlink("../sentinel", target / "lib")
    apply_bytes(make_tar([f("lib/x", b"x")]), target)
    assert tree(target) == {"lib": "dir", "lib/x": "file x"}
    assert_untouched(target, sentinel)


@pytest.mark.parametrize("name, expected", [
    ("a/b", "a/b"), ("./a/./b/", "a/b"), ("/a", "a"), ("/../a", "a"), ("a/../b", "b"),
    (".", ""), ("./", ""), ("/", ""), ("a/..", ""),
])
def test_clean_name(name: str, expected: str) -> None:
    assert clean_name(name, name) == expected


def test_unsupported_entry_type_is_named(tmp_path: Path) -> None:
    bad = E("weird", b"V")
    with pytest.raises(InvalidArgument, match="'weird'"):
        apply_bytes(make_tar([bad]), tmp_path / "t")


# ---- whiteouts (delete mode), opaque dirs, replacement -------------------------------
BASE = [d("etc"), f("etc/passwd", b"root"), f("etc/group", b"g"), d("etc/ssl"),
        f("etc/ssl/cert", b"c"), d("bin"), f("bin/vi", b"vi"), f("bin/sh", b"sh"),
        d("var"), d("var/lib"), f("var/lib/db", b"db"), f("file-to-dir", b"f"),
        d("dir-to-file"), f("dir-to-file/inner", b"i"), sym("link-to-dir", "etc")]


def test_whiteouts_and_opaque_dirs_in_delete_mode(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply_bytes(make_tar(BASE), target)
    layer = [wh("bin/vi"), d("etc"), opq("etc"), f("etc/passwd", b"new root"),
             wh("var/lib"), wh("nothing-here"), f("bin/new", b"n"), wh("bin/new")]
    apply_bytes(make_tar(layer), target)
    t = tree(target)
    assert "bin/vi" not in t and t["bin/sh"] == "file sh"
    assert t["bin/new"] == "file n"       # a whiteout never hides its own layer's entries
    assert sorted(k for k in t if k.startswith("etc/")) == ["etc/passwd"]
    assert t["etc/passwd"] == "file new root"
    assert t["var"] == "dir" and "var/lib" not in t and "var/lib/db" not in t
    assert not any(".wh." in k for k in t)


def test_opaque_marker_before_its_directory_entry_and_nested_adds(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply_bytes(make_tar(BASE), target)
    apply_bytes(make_tar([opq("etc"), d("etc/ssl"), f("etc/ssl/new", b"n")]), target)
    t = tree(target)
    assert sorted(k for k in t if k.startswith("etc")) == ["etc", "etc/ssl", "etc/ssl/new"]


def test_opaque_root_in_delete_mode(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply_bytes(make_tar(BASE), target)
    apply_bytes(make_tar([f("only", b"o"), f(".wh..wh..opq")]), target)
    assert tree(target) == {"only": "file o"}


def test_replacement_rules_like_docker(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply_bytes(make_tar(BASE), target)
    layer = [d("file-to-dir", mode=0o700), f("file-to-dir/x", b"x"),
             f("dir-to-file", b"now a file"), sym("etc/passwd", "group"),
             d("link-to-dir"), d("etc", mode=0o750), f("bin/sh", b"new sh")]
    apply_bytes(make_tar(layer), target)
    t = tree(target)
    assert t["file-to-dir"] == "dir" and t["file-to-dir/x"] == "file x"
    assert t["dir-to-file"] == "file now a file" and "dir-to-file/inner" not in t
    assert t["etc/passwd"] == "-> group"
    assert t["link-to-dir"] == "dir"
    assert t["etc/group"] == "file g"      # dir over dir merges
    assert stat.S_IMODE(os.stat(target / "etc").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(target / "file-to-dir").st_mode) == 0o700
    assert t["bin/sh"] == "file new sh"


def test_hardlinks_do_not_share_replaced_content(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply_bytes(make_tar([f("a", b"one"), hard("b", "a")]), target)
    apply_bytes(make_tar([f("a", b"two")]), target)
    assert (target / "a").read_bytes() == b"two" and (target / "b").read_bytes() == b"one"


def test_modes_mtimes_and_user_xattrs(tmp_path: Path) -> None:
    target = tmp_path / "t"
    layer = [d("ro", mode=0o555), f("ro/file", b"x", mode=0o4755), d("tmp", mode=0o1777),
             f("x", b"x", xattrs={"user.note": b"hello", "trusted.overlay.opaque": b"y"}),
             sym("l", "x"), E("fifo", tarfile.FIFOTYPE, mode=0o640)]
    apply_bytes(make_tar(layer), target)
    assert stat.S_IMODE(os.stat(target / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(target / "ro/file").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(target / "tmp").st_mode) == 0o1777
    assert stat.S_ISFIFO(os.stat(target / "fifo").st_mode)
    for name in ("ro", "ro/file", "tmp", "x", "fifo"):
        assert os.stat(target / name).st_mtime == MTIME, name
    assert os.lstat(target / "l").st_mtime == MTIME
    try:
        value = os.getxattr(target / "x", "user.note")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    assert value == b"hello"
    assert "trusted.overlay.opaque" not in os.listxattr(target / "x")


def test_devices_are_skipped_when_not_allowed(tmp_path: Path) -> None:
    target = tmp_path / "t"
    layer = [E("null", tarfile.CHRTYPE, dev=(1, 3), mode=0o666), f("after", b"a")]
    apply_bytes(make_tar(layer), target, allow_devices=False)
    assert tree(target) == {"after": "file a"}


@pytest.mark.skipif(os.geteuid() == 0, reason="checks the unprivileged path")
def test_unprivileged_apply_skips_ownership_and_devices(tmp_path: Path) -> None:
    target = tmp_path / "t"
    layer = [f("owned", b"x", uid=1234, gid=1234),
             E("null", tarfile.CHRTYPE, dev=(1, 3), mode=0o666)]
    apply_bytes(make_tar(layer), target)
    assert os.stat(target / "owned").st_uid == os.geteuid()
    assert not (target / "null").exists()


# ---- random tars: whatever they hold, nothing is written outside the target -----------
_PARTS = ["a", "b", "..", ".", "evil", "up", ".wh.a", ".wh..wh..opq", "sentinel"]
_LINKS = ["/", "..", "../..", "../sentinel", "../sentinel/keep", "a", "/etc", "evil/a"]


def random_tar(rng: random.Random) -> bytes:
    entries = []
    for _ in range(rng.randint(1, 8)):
        name = "/".join(rng.choice(_PARTS) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.2:
            name = "/" + name
        kind = rng.choice("ffddslp")
        if kind == "f":
            entries.append(f(name, b"pwned"))
        elif kind == "d":
            entries.append(d(name))
        elif kind == "s":
            entries.append(sym(name, rng.choice(_LINKS)))
        elif kind == "l":
            entries.append(hard(name, rng.choice(_LINKS + [e.name for e in entries])))
        else:
            entries.append(E(name, tarfile.FIFOTYPE))
    return make_tar(entries)


def fuzz_apply(tmp_path: Path, whiteouts: str, rounds: int, seed: int) -> int:
    rng = random.Random(seed)
    refused = 0
    for i in range(rounds):
        case = tmp_path / str(i)
        sentinel = case / "sentinel"
        sentinel.mkdir(parents=True)
        (sentinel / "keep").write_text("original")
        target = case / "target"
        target.mkdir()
        for _layer in range(rng.randint(1, 2)):
            try:
                apply_layer(io.BytesIO(random_tar(rng)), target, whiteouts=whiteouts)  # type: ignore[arg-type]
            except InvalidArgument:
                refused += 1
        assert sorted(os.listdir(case)) == ["sentinel", "target"], i
        assert os.listdir(sentinel) == ["keep"] and (sentinel / "keep").read_text() == "original"
    return refused


def test_random_tars_never_escape(tmp_path: Path) -> None:
    refused = fuzz_apply(tmp_path, "delete", rounds=400, seed=1234)
    assert 0 < refused < 800      # the corpus exercises both outcomes
