"""COPY/ADD rules on the layer tar they produce (no kernel needed)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from sdk.build.cache import StepCache
from sdk.build.copy import CopySpec, SourceRoot, collect_sources, source_hash, write_copy_layer
from sdk.build.dockerignore import Matcher, parse_patterns
from sdk.build.rootview import RootView
from sdk.errors import InvalidArgument, NotFound


@pytest.fixture
def ctx(tmp_path: Path) -> SourceRoot:
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b.txt").write_text("b")
    (root / "skip.log").write_text("s")
    (root / "dir" / "x").write_text("x")
    (root / "dir" / "sub" / "y").write_text("y")
    (root / "dir" / "sub" / "z.log").write_text("z")
    os.chmod(root / "dir" / "x", 0o751)
    os.symlink("a.txt", root / "link")
    matcher = Matcher(parse_patterns("*.log\n**/*.log\n"))
    return SourceRoot(str(root), matcher.matches)


@pytest.fixture
def image(tmp_path: Path) -> RootView:
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "existing").mkdir()
    os.chmod(lower / "existing", 0o700)
    (lower / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")
    (lower / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    os.symlink("existing", lower / "alias")
    return RootView([lower])


def _copy(ctx: SourceRoot, image: RootView, srcs: list[str], dest: str,
          **kw: object) -> dict[str, tarfile.TarInfo]:
    sources = collect_sources(ctx, srcs, allow_url=False, extract=bool(kw.pop("add", False)))
    buf = io.BytesIO()
    spec = CopySpec(dest, str(kw.pop("workdir", "/")), **kw)  # type: ignore[arg-type]
    write_copy_layer(sources, ctx, spec, image, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_file_to_new_path_and_into_directories(ctx: SourceRoot, image: RootView) -> None:
    assert set(_copy(ctx, image, ["a.txt"], "/new/name")) == {"new", "new/name"}
    assert "new/a.txt" in _copy(ctx, image, ["a.txt"], "/new/")
    got = _copy(ctx, image, ["a.txt"], "/existing")       # an existing dir: copy into it
    assert "existing/a.txt" in got
    assert got["existing"].mode == 0o700                   # its metadata is kept
    assert "existing/a.txt" in _copy(ctx, image, ["a.txt"], "/alias/")  # symlink followed
    assert "app/rel/a.txt" in _copy(ctx, image, ["a.txt"], "rel/", workdir="/app")


def test_directory_copies_its_contents_minus_ignored(ctx: SourceRoot,
                                                     image: RootView) -> None:
    got = _copy(ctx, image, ["dir"], "/d")
    assert set(got) == {"d", "d/x", "d/sub", "d/sub/y"}
    assert got["d/x"].mode == 0o751 and got["d/x"].uid == 0


def test_wildcards_several_sources_and_errors(ctx: SourceRoot, image: RootView) -> None:
    got = _copy(ctx, image, ["*.txt"], "/w/")
    assert {"w/a.txt", "w/b.txt"} <= set(got) and "w/skip.log" not in got
    with pytest.raises(InvalidArgument, match="must be a directory and end with a /"):
        _copy(ctx, image, ["a.txt", "b.txt"], "/nodir")
    with pytest.raises(NotFound, match="file not found in build context"):
        _copy(ctx, image, ["missing"], "/x")
    with pytest.raises(NotFound, match="excluded by .dockerignore"):
        _copy(ctx, image, ["skip.log"], "/x")
    with pytest.raises(InvalidArgument, match="outside the build context"):
        _copy(ctx, image, ["../etc/passwd"], "/x")
    with pytest.raises(InvalidArgument, match="outside the build context"):
        _copy(ctx, image, ["dir/../../x"], "/x")


def test_chown_by_name_and_chmod(ctx: SourceRoot, image: RootView) -> None:
    uid_gid = image.lookup_user("app:staff")
    assert uid_gid == (1000, 50)
    assert image.lookup_user("app") == (1000, 1001)
    assert image.lookup_user("7") == (7, 7)
    got = _copy(ctx, image, ["dir"], "/o", chown=uid_gid, chmod=0o600)
    assert all((m.uid, m.gid, m.mode) == (1000, 50, 0o600) for m in got.values())
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        image.lookup_user("nobody")


def test_top_level_symlink_source_is_followed(ctx: SourceRoot, image: RootView) -> None:
    got = _copy(ctx, image, ["link"], "/l")
    assert got["l"].isreg() and got["l"].size == 1


def test_add_extracts_local_archives(ctx: SourceRoot, image: RootView,
                                     tmp_path: Path) -> None:
    archive = Path(ctx.root) / "arch.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(Path(ctx.root) / "dir", "top")
    got = _copy(ctx, image, ["arch.tar.xz"], "/ex/", add=True)
    assert {"ex", "ex/top", "ex/top/x", "ex/top/sub/y"} <= set(got)
    assert "ex/arch.tar.xz" in _copy(ctx, image, ["arch.tar.xz"], "/ex/")   # COPY: as is


def test_source_hash_follows_content_not_mtime(ctx: SourceRoot, tmp_path: Path) -> None:
    cache = StepCache(tmp_path / "cache")
    first = source_hash(cache, ctx, collect_sources(ctx, ["dir"], allow_url=False,
                                                     extract=False))
    assert first.startswith("dir:")
    os.utime(Path(ctx.root) / "dir" / "x", (1, 1))
    assert source_hash(cache, ctx, collect_sources(ctx, ["dir"], allow_url=False,
                                                   extract=False)) == first
    (Path(ctx.root) / "dir" / "sub" / "z.log").write_text("ignored change")
    assert source_hash(cache, ctx, collect_sources(ctx, ["dir"], allow_url=False,
                                                   extract=False)) == first
    (Path(ctx.root) / "dir" / "x").write_text("changed")
    assert source_hash(cache, ctx, collect_sources(ctx, ["dir"], allow_url=False,
                                                   extract=False)) != first
    multi = source_hash(cache, ctx, collect_sources(ctx, ["a.txt", "b.txt"],
                                                    allow_url=False, extract=False))
    assert multi.startswith("multi:")
