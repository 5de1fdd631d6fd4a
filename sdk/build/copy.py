"""COPY and ADD: pick the sources, hash them for the cache, write them as a layer tar.

Docker's rules: sources are relative to the context (or a stage/image rootfs for
``--from``) and may not leave it; wildcards match like Go's ``filepath.Match`` per
path component; a directory source copies its contents; several sources need a
destination ending in ``/``; a file goes into the destination when that ends in ``/``
or already is a directory; missing parents are created 0755; files keep their mode
and mtime and belong to root unless ``--chown``; ``ADD`` unpacks local tar archives
(plain, gzip, bzip2, xz) and downloads URLs with mode 0600.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from sdk.build.cache import StepCache, entry_hash
from sdk.build.rootview import RootView
from sdk.build.tarout import DIRTYPE, FIFOTYPE, REGTYPE, SYMTYPE, TarOut
from sdk.diff.tree import Entry, walk_merged, walk_tree
from sdk.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    import tarfile

_WILD = set("*?[")


@dataclass(slots=True)
class Source:
    full: str             # host path
    name: str             # basename used when copying a file into a directory
    rel: str              # path relative to the source root (for .dockerignore)
    archive: bool = False
    url: str = ""
    mtime: float | None = None


@dataclass(slots=True)
class SourceRoot:
    """Where sources come from: the build context, or another stage's/image's rootfs."""
    root: str
    ignored: Callable[[str], bool] = field(default=lambda _rel: False)
    view: RootView | None = None     # for --from: a layered rootfs

    def host_path(self, rel: str) -> str | None:
        if self.view is not None:
            return self.view.find(self.view.resolve(rel))
        return os.path.join(self.root, rel) if rel else self.root


def _clean_source(src: str) -> str:
    norm = posixpath.normpath(src.lstrip("/") or ".")
    if norm == ".." or norm.startswith("../"):
        raise InvalidArgument(f"forbidden path outside the build context: {src} ()")
    return "" if norm == "." else norm


def _go_match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern.replace("[^", "[!"))


def _glob(base: SourceRoot, pattern: str) -> list[str]:
    parts = pattern.split("/")
    found = [""]
    for part in parts:
        nxt = []
        for prefix in found:
            full = base.host_path(prefix)
            if full is None or not os.path.isdir(full):
                continue
            if not (_WILD & set(part)):
                cand = f"{prefix}/{part}" if prefix else part
                if base.host_path(cand) is not None and os.path.lexists(
                        base.host_path(cand) or ""):
                    nxt.append(cand)
                continue
            for name in sorted(os.listdir(full)):
                if _go_match(part, name):
                    nxt.append(f"{prefix}/{name}" if prefix else name)
        found = nxt
    return [f for f in found if not base.ignored(f)]


def collect_sources(base: SourceRoot, srcs: list[str], *, allow_url: bool,
                    extract: bool) -> list[Source]:
    out: list[Source] = []
    for src in srcs:
        if allow_url and src.startswith(("http://", "https://")):
            out.append(Source("", "", "", url=src))
            continue
        rel = _clean_source(src)
        if _WILD & set(rel):
            matches = _glob(base, rel)
            if not matches:
                raise NotFound(f"no source files were specified ({src} matched nothing in "
                               "the build context)")
        else:
            matches = [rel]
        for m in matches:
            full = base.host_path(m)
            if m and base.view is None and os.path.islink(full or ""):
                full = _follow_in(base.root, m)
            if full is None or not os.path.lexists(full) or (m and base.ignored(m)):
                raise NotFound(f"file not found in build context or excluded by "
                               f".dockerignore: stat {src}: file does not exist")
            is_archive = extract and os.path.isfile(full) and _is_archive(full)
            out.append(Source(full, posixpath.basename(m) or "", m, archive=is_archive))
    return out


def _follow_in(root: str, rel: str) -> str:
    """A symlink given as a source is followed, but never out of the context."""
    parts = rel.split("/")
    out: list[str] = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if out:
                out.pop()
            continue
        full = os.path.join(root, *out, name)
        if os.path.islink(full):
            hops += 1
            if hops > 40:
                raise InvalidArgument(f"too many levels of symbolic links: {rel}")
            target = os.readlink(full)
            if target.startswith("/"):
                out = []
            parts = target.split("/") + parts
            continue
        out.append(name)
    return os.path.join(root, *out)


def _is_archive(path: str) -> bool:
    import tarfile

    try:
        with tarfile.open(path, "r:*") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError):
        return False


def fetch_urls(sources: list[Source], tmpdir: str) -> None:
    """Download URL sources into ``tmpdir`` (mode 0600, mtime from Last-Modified)."""
    if not any(s.url for s in sources):
        return              # urllib.request and email cost ~50 ms to import
    import email.utils
    import urllib.parse
    import urllib.request

    for i, s in enumerate(sources):
        if not s.url:
            continue
        name = posixpath.basename(urllib.parse.urlparse(s.url).path)
        target = os.path.join(tmpdir, f"url-{i}")
        try:
            with urllib.request.urlopen(s.url, timeout=60) as resp, \
                    open(target, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except OSError as exc:
            raise InvalidArgument(f"failed to download {s.url}: {exc}") from None
        os.chmod(target, 0o600)
        s.full, s.name, s.rel = target, name, name
        if modified:
            try:
                s.mtime = email.utils.parsedate_to_datetime(modified).timestamp()
            except (TypeError, ValueError):
                s.mtime = None


def verify_checksum(sources: list[Source], expected: str) -> None:
    """``ADD --checksum=sha256:HEX``: the one source must have that digest."""
    algo, _, want = expected.partition(":")
    if algo != "sha256" or len(want) != 64:
        raise InvalidArgument(f"invalid checksum {expected!r}: expected sha256:<64 hex>")
    if len(sources) != 1 or os.path.isdir(sources[0].full):
        raise InvalidArgument("--checksum needs exactly one file source")
    h = hashlib.sha256()
    with open(sources[0].full, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != want.lower():
        raise InvalidArgument(f"digest mismatch for {sources[0].url or sources[0].rel}: "
                              f"expected {expected}, got sha256:{h.hexdigest()}")


def iter_source_tree(s: Source, base: SourceRoot) -> Iterator[Entry]:
    """Everything below directory source ``s`` (pre-order, sorted), minus what
    .dockerignore excludes; for ``--from`` the merged view of the stage's layers."""
    if base.view is not None:
        yield from walk_merged(base.view.dir_layers(base.view.resolve(s.rel)))
        return
    for rel, full, st in walk_tree(s.full):
        if base.ignored(f"{s.rel}/{rel}" if s.rel else rel):
            continue
        yield rel, full, st


def source_hash(cache: StepCache, base: SourceRoot, sources: list[Source]) -> str:
    """``file:<hex>``, ``dir:<hex>`` or ``multi:<hex>`` as Docker names copied content."""
    parts = []
    for s in sources:
        h = hashlib.sha256()
        st = os.lstat(s.full)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        if kind == "file":      # its name is what it is called under a directory dest
            h.update(s.name.encode() + b"\0")
        entry_hash(cache, s.full, "", st, h)
        if kind == "dir":
            for rel, full, est in iter_source_tree(s, base):
                entry_hash(cache, full, rel, est, h)
        if s.archive:
            h.update(b"archive")
        parts.append(f"{kind}:{h.hexdigest()}")
    if len(parts) == 1:
        return parts[0]
    return "multi:" + hashlib.sha256(",".join(parts).encode()).hexdigest()


@dataclass(slots=True)
class CopySpec:
    dest: str                       # as written (after expansion), may be relative
    workdir: str
    chown: tuple[int, int] | None = None
    chmod: int | None = None


def parse_chmod(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise InvalidArgument(f"invalid chmod parameter: {text!r} (octal mode "
                              "expected)") from None
    if not 0 <= value <= 0o7777:
        raise InvalidArgument(f"invalid chmod parameter: {text!r}")
    return value


class _Tar:
    """The layer's tar stream, with the names written so far."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = TarOut(out)
        self.seen: set[str] = set()
        self.count = 0

    def add(self, name: str, mode: int, uid: int, gid: int, mtime: int, typeflag: bytes,
            *, size: int = 0, linkname: str = "", path: str | None = None) -> None:
        self.tar.entry(name, mode, uid, gid, mtime, typeflag, size=size,
                       linkname=linkname, path=path)
        self.seen.add(name)
        self.count += 1

    def add_member(self, info: tarfile.TarInfo, fileobj: BinaryIO | None = None) -> None:
        info.uname = info.gname = ""
        self.tar.member(info, fileobj)
        self.seen.add(info.name)
        self.count += 1

    def close(self) -> None:
        self.tar.close()


def write_copy_layer(sources: list[Source], base: SourceRoot, spec: CopySpec,
                     view: RootView, out: BinaryIO) -> int:
    """Write the layer tar of one COPY/ADD; returns the number of entries."""
    dest = spec.dest
    dir_dest = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join(spec.workdir or "/", dest)
    dest_rel = view.resolve(posixpath.normpath(dest).lstrip("/"))
    uid, gid = spec.chown if spec.chown else (0, 0)
    if len(sources) > 1 and not dir_dest:
        raise InvalidArgument("When using COPY with more than one source file, the "
                              "destination must be a directory and end with a /")
    existing = view.lstat(dest_rel) if dest_rel else os.lstat("/")
    dest_is_dir = dir_dest or (existing is not None and stat.S_ISDIR(existing.st_mode))
    tar = _Tar(out)
    now = time.time()

    def parents(rel: str) -> None:
        parts = rel.split("/")[:-1]
        for k in range(1, len(parts) + 1):
            p = "/".join(parts[:k])
            if p in tar.seen:
                continue
            full = view.find(p)
            if full is not None:
                st = os.lstat(full)
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidArgument(f"cannot copy to /{rel}: /{p} is not a directory")
                tar.add(p, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime),
                        DIRTYPE)
            else:
                tar.add(p, 0o755, uid, gid, int(now), DIRTYPE)

    def entry(full: str, rel: str, st: os.stat_result, mtime: float | None = None,
              top_dir_keep: bool = False) -> None:
        when = int(mtime if mtime is not None else st.st_mtime)
        fmt = stat.S_IFMT(st.st_mode)
        mode = stat.S_IMODE(st.st_mode)
        if spec.chmod is not None and fmt != stat.S_IFLNK:
            mode = spec.chmod
        if fmt == stat.S_IFREG:
            tar.add(rel, mode, uid, gid, when, REGTYPE, size=st.st_size, path=full)
        elif fmt == stat.S_IFDIR:
            owner = (uid, gid)
            if top_dir_keep:
                low = view.lstat(rel)
                if low is not None and stat.S_ISDIR(low.st_mode):
                    mode, owner = stat.S_IMODE(low.st_mode), (low.st_uid, low.st_gid)
                    when = int(low.st_mtime)
            tar.add(rel, mode, *owner, when, DIRTYPE)
        elif fmt == stat.S_IFLNK:
            tar.add(rel, mode, uid, gid, when, SYMTYPE, linkname=os.readlink(full))
        elif fmt == stat.S_IFIFO:
            tar.add(rel, mode, uid, gid, when, FIFOTYPE)

    try:
        for s in sources:
            st = os.stat(s.full) if s.url else os.lstat(s.full)
            if s.archive:
                target = dest_rel
                if target:
                    parents(target + "/x")
                _extract_archive(s.full, target, tar, view)
            elif stat.S_ISDIR(st.st_mode):
                target = dest_rel
                if target:
                    parents(target)
                    entry(s.full, target, st, top_dir_keep=True)
                _walk_dir(s, base, target, entry)
            else:
                if dest_is_dir:
                    if not s.name:
                        raise InvalidArgument(f"cannot determine filename from url: {s.url}")
                    target = posixpath.join(dest_rel, s.name) if dest_rel else s.name
                else:
                    target = dest_rel
                if not target:
                    raise InvalidArgument("cannot copy a file onto /")
                parents(target)
                entry(s.full, target, st, s.mtime)
    finally:
        tar.close()
    return tar.count


def _walk_dir(s: Source, base: SourceRoot, target: str,
              entry: Callable[..., None]) -> None:
    for rel, full, st in iter_source_tree(s, base):
        entry(full, f"{target}/{rel}" if target else rel, st)


def _extract_archive(path: str, target: str, tar: _Tar, view: RootView) -> None:
    import tarfile

    with tarfile.open(path, "r:*") as src:
        for member in src:
            name = posixpath.normpath(member.name.lstrip("/"))
            if name in (".", "") or name.startswith(".."):
                continue
            if posixpath.basename(name).startswith(".wh."):
                continue
            full_name = f"{target}/{name}" if target else name
            parts = full_name.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                p = "/".join(parts[:k])
                if p not in tar.seen and view.find(p) is None:
                    tar.add(p, 0o755, 0, 0, int(time.time()), DIRTYPE)
            member.name = full_name
            if member.islnk():
                link = posixpath.normpath(member.linkname.lstrip("/"))
                member.linkname = f"{target}/{link}" if target else link
            fileobj = src.extractfile(member) if member.isreg() else None
            member.pax_headers = {k: v for k, v in member.pax_headers.items()
                                  if k not in ("path", "linkpath")}
            tar.add_member(member, fileobj)
