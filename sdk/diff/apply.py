"""Apply a layer tarball to a directory: our own code, never ``tarfile.extractall``.

``TarReader`` (``sdk.diff.tarstream``) only parses headers; every entry is created
here with the ``*at`` system calls relative to directory fds obtained by
``DirResolver``, which never follows a symlink.  The rules, which match Docker's
applier where it has one:

* names are normalised; a leading ``/`` is dropped (``/../x`` is ``x``, like Docker),
  and a relative name climbing out of the root (``../x``, ``a/../../x``) is refused;
* an entry is never written *through* a symlink: a symlink (or other non-directory)
  created by this layer in the middle of a later entry's path is an error.  One left
  by a lower layer (vfs: applying onto a copy of the parent) is replaced by a
  directory, which is what overlayfs shows for the same two layers;
* symlink targets are data and may point anywhere; hardlink targets must name an
  existing non-directory inside the root (same name rules, same no-symlink walk);
* an entry replaces whatever is at its path unless both are directories (then the
  directory's metadata is updated and its content kept);
* ownership (numeric, when root), modes incl. setuid/sticky (set after chown, which
  clears them), mtimes (directories last, deepest first), xattrs from PAX
  ``SCHILY.xattr.*`` / ``LIBARCHIVE.xattr.*`` (``trusted.overlay.*`` is never taken
  from a tar; EPERM/ENOTSUP on an xattr is ignored, as Docker does);
* devices: created when ``allow_devices`` and permitted; otherwise *skipped* (as a
  rootless Docker does) rather than failing the whole layer;
* OCI whiteouts: ``.wh.NAME`` and ``DIR/.wh..wh..opq`` become overlay whiteouts
  (0/0 char device, ``trusted.overlay.opaque=y``) or deletions (``"delete"``); they
  only act on what lower layers left, never on entries of this same layer.  Other
  ``.wh..wh.*`` names (AUFS metadata) are skipped.

Errors leave ``target`` partly written: callers apply into a fresh temporary
directory and rename it into place only on success (``LayerStore.create`` does).
"""

from __future__ import annotations

import base64
import errno
import io
import os
import posixpath
import shutil
import stat
import tarfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

from sdk.diff.compression import HashingReader, open_decompressed
from sdk.diff.confined import DirResolver
from sdk.diff.prefetch import Prefetch
from sdk.diff.tarstream import TarReader
from sdk.diff.whiteouts import (
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    is_overlay_whiteout,
    is_overlay_xattr,
)
from sdk.errors import FailedPrecondition, InvalidArgument

Whiteouts = Literal["overlay", "delete"]
_READ_BUFSIZE = 1 << 18
#: default of ``apply_layer(prefetch=)``: inflate and hash in a thread of their own.
#: Off: it gains only where a core is idle (``pull`` checks and asks for it), and a
#: build already unpacks beside its writer thread
PREFETCH = False
_COPY_CHUNK = 1 << 20
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: errors that mean "this entry cannot be created as described", i.e. a bad tarball
_ENTRY_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EINVAL, errno.EEXIST, errno.ENOTDIR,
                           errno.EISDIR, errno.ELOOP, errno.EMLINK, errno.ENOTEMPTY,
                           errno.ENOENT})


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """``diff_id``/``size``: sha256 and byte count of the *uncompressed* tar stream.

    ``content_size``: bytes of the layer's own content (regular files, plus symlink
    targets, hardlinks counted once), which is what Docker reports as a layer's size.
    """

    diff_id: str
    size: int
    content_size: int = 0


def clean_name(name: str, entry: str, what: str = "entry") -> str:
    """Normalised path relative to the root ("" is the root itself).

    Absolute names are taken relative to the root and ``..`` cannot climb above it
    (Docker's rule); a relative name that climbs above the root is refused.
    """
    if "\x00" in name:
        raise InvalidArgument(f"invalid layer entry {entry!r}: NUL in {what} name")
    if name.startswith("/"):
        norm = posixpath.normpath(name).lstrip("/")
    else:
        norm = posixpath.normpath(name) if name else "."
        if norm == ".." or norm.startswith("../"):
            raise InvalidArgument(f"invalid layer entry {entry!r}: {what} {name!r} points "
                                  "outside the layer root")
    return "" if norm in (".", "") else norm


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) \
                else bytes(value)
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            try:
                raw = base64.b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                continue
        else:
            continue
        if name and not is_overlay_xattr(name):
            out.append((name, raw))
    return out


class _Applier:
    def __init__(self, target: Path, whiteouts: Whiteouts, allow_devices: bool,
                 fresh: bool = False) -> None:
        if whiteouts not in ("overlay", "delete"):
            raise ValueError(f"whiteouts must be 'overlay' or 'delete', not {whiteouts!r}")
        self.overlay = whiteouts == "overlay"
        self.allow_devices = allow_devices
        self.is_root = os.geteuid() == 0
        self.root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dirs = DirResolver(self.root_fd)
        root_st = os.fstat(self.root_fd)
        if fresh and os.listdir(target):
            self.close()
            raise ValueError(f"apply_layer(fresh=True): {target} is not empty")
        #: ``target`` started empty: a path this layer did not create (``added``) or
        #: white out (``whited``) cannot exist, so no stat is needed before creating it
        self.fresh = fresh
        #: owner new inodes get anyway (fresh tree, no setgid dir): chown is skipped
        self.default_owner = (os.geteuid(), os.getegid()) if fresh and not \
            root_st.st_mode & stat.S_ISGID and root_st.st_gid == os.getegid() else None
        self.whited: set[str] = set()
        #: bits open() would strip from a file's mode (None: unknown, always chmod)
        self.umask = _umask() if self.default_owner is not None else None
        #: every path this layer created or replaced (incl. implicit parents): whiteouts
        #: and opaque markers leave these alone, and they are never walked through
        self.added: set[str] = set()
        #: directory rel -> (mode, mtime_ns), applied at the end, deepest first
        self.dir_meta: dict[str, tuple[int, int]] = {}
        self.content_size = 0

    def close(self) -> None:
        self.dirs.close()
        os.close(self.root_fd)

    # ---- path resolution ---------------------------------------------------------------
    def parent_fd(self, rel_dir: str, entry: str) -> int:
        def conflict(pfd: int, name: str, rel: str) -> None:
            self._replace_parent(pfd, name, rel, entry)

        return self.dirs.open_dir(rel_dir, create=True, on_conflict=conflict,
                                  on_create=self.added.add)

    def _replace_parent(self, pfd: int, name: str, rel: str, entry: str) -> None:
        """Component ``rel`` of ``entry``'s path is not a directory: refuse or replace."""
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        whiteout = is_overlay_whiteout(st)
        if rel in self.added and not whiteout:
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise InvalidArgument(f"invalid layer entry {entry!r}: {rel!r} is {kind} in this "
                                  "layer; entries are never written through it")
        # left by a lower layer (or an overlay whiteout): a directory now takes its place
        os.unlink(name, dir_fd=pfd)
        os.mkdir(name, 0o755, dir_fd=pfd)
        self.added.add(rel)
        if self.overlay and whiteout:
            self._set_opaque_at(pfd, name)

    def _set_opaque_at(self, pfd: int, name: str) -> None:
        os.setxattr(f"/proc/self/fd/{pfd}/{name}", OPAQUE_XATTR, b"y", follow_symlinks=False)

    def _remove(self, pfd: int, name: str, rel: str, st: os.stat_result | None = None) -> None:
        if st is None:
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                return
        if stat.S_ISDIR(st.st_mode):
            self.dirs.forget(rel)
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    # ---- the entries ----------------------------------------------------------------
    def apply(self, tar: TarReader) -> None:
        for member in tar:
            try:
                self.entry(tar, member)
            except OSError as exc:
                if exc.errno in _ENTRY_ERRNOS:
                    raise InvalidArgument(f"invalid layer entry {member.name!r}: "
                                          f"{exc.strerror or exc}") from None
                if exc.errno == errno.EPERM and not self.is_root:
                    raise FailedPrecondition(f"cannot create layer entry {member.name!r} "
                                             f"without root: {exc.strerror}") from None
                exc.add_note(f"while applying layer entry {member.name!r}")
                raise
        self.finish_dirs()

    def entry(self, tar: TarReader, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name, m.name)
        if not rel:
            self.root_entry(m)
            return
        rel_dir, name = posixpath.split(rel)
        if name == OPAQUE_MARKER:
            self.opaque(rel_dir, m.name)
            return
        if WHITEOUT_META_PREFIX in rel and any(
                p.startswith(WHITEOUT_META_PREFIX) for p in rel.split("/")):
            return          # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        if name.startswith(WHITEOUT_PREFIX):
            self.whiteout(rel_dir, name[len(WHITEOUT_PREFIX):], m)
            return
        if m.islnk():
            self.hardlink(m, rel, rel_dir, name)
            return
        if not (m.isreg() or m.isdir() or m.issym() or m.isfifo() or m.ischr() or m.isblk()):
            raise InvalidArgument(f"invalid layer entry {m.name!r}: unsupported tar entry "
                                  f"type {m.type!r}")
        if (m.ischr() or m.isblk()) and not self.allow_devices:
            return
        pfd = self.parent_fd(rel_dir, m.name)
        kept_dir, replaced_whiteout = self._clear(pfd, name, rel, m.isdir())
        self.added.add(rel)
        if m.isdir():
            if not kept_dir:
                os.mkdir(name, 0o700, dir_fd=pfd)
                if self.overlay and replaced_whiteout:
                    # a directory re-created over a deleted one must not show the old
                    # content of lower layers through it
                    self._set_opaque_at(pfd, name)
            self._meta_path(m, pfd, name)
            self.dir_meta[rel] = (m.mode & 0o7777, _mtime_ns(m))
        elif m.isreg():
            self.regular(tar, m, pfd, name)
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
            self.content_size += len(os.fsencode(m.linkname))
            self._meta_path(m, pfd, name)
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
            self._meta_path(m, pfd, name)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            except PermissionError:
                if self.is_root:
                    raise
                self.added.discard(rel)
                return      # unprivileged: skip device nodes, as rootless Docker does
            self._meta_path(m, pfd, name)

    def _clear(self, pfd: int, name: str, rel: str, is_dir: bool) -> tuple[bool, bool]:
        """Remove what is at ``name`` unless both it and the new entry are directories.

        Returns (an existing directory was kept, what was removed was an overlay whiteout).
        """
        if self.fresh and rel not in self.added and rel not in self.whited:
            return False, False
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False, False
        if is_dir and stat.S_ISDIR(st.st_mode):
            return True, False
        self._remove(pfd, name, rel, st)
        return False, is_overlay_whiteout(st)

    def regular(self, tar: TarReader, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        # created with its final mode when nothing would change it afterwards (no
        # chown, which clears setuid bits; no umask bits): saves a journalled fchmod
        mode = m.mode & 0o7777
        exact = self.umask is not None and not mode & self.umask and \
            (m.uid, m.gid) == self.default_owner
        fd = os.open(name, _FILE_FLAGS, mode if exact else 0o600, dir_fd=pfd)
        try:
            while chunk := tar.read_view(_COPY_CHUNK):
                while chunk:
                    chunk = chunk[os.write(fd, chunk):]
            if self.is_root and (m.uid, m.gid) != self.default_owner:
                os.chown(fd, m.uid, m.gid)
            self._set_xattrs(m, fd)
            if not exact:
                os.chmod(fd, mode)
            mtime = _mtime_ns(m)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
        self.content_size += m.size

    def hardlink(self, m: tarfile.TarInfo, rel: str, rel_dir: str, name: str) -> None:
        target = clean_name(m.linkname, m.name, "hardlink target")
        if not target:
            raise InvalidArgument(f"invalid layer entry {m.name!r}: hardlink to the root")
        t_dir, t_name = posixpath.split(target)

        def refuse(_pfd: int, _name: str, comp: str) -> None:
            raise InvalidArgument(f"invalid layer entry {m.name!r}: hardlink target "
                                  f"{m.linkname!r} goes through {comp!r}, not a directory")

        try:
            tfd = os.dup(self.dirs.open_dir(t_dir, on_conflict=refuse))
        except FileNotFoundError:
            tfd = -1
        try:
            try:
                tst = os.stat(t_name, dir_fd=tfd, follow_symlinks=False) if tfd >= 0 else None
            except FileNotFoundError:
                tst = None
            if tst is None:
                raise InvalidArgument(f"invalid layer entry {m.name!r}: hardlink target "
                                      f"{m.linkname!r} does not exist in the layer root")
            if stat.S_ISDIR(tst.st_mode):
                raise InvalidArgument(f"invalid layer entry {m.name!r}: hardlink target "
                                      f"{m.linkname!r} is a directory")
            if target == rel:
                return      # a link to itself: already there
            pfd = self.parent_fd(rel_dir, m.name)
            self._clear(pfd, name, rel, False)
            try:
                os.link(t_name, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            except (FileNotFoundError, PermissionError):
                # the entry's own path replaced the target (by a directory: EPERM)
                raise InvalidArgument(f"invalid layer entry {m.name!r}: hardlink target "
                                      f"{m.linkname!r} was replaced by this entry's "
                                      "path") from None
            self.added.add(rel)
        finally:
            if tfd >= 0:
                os.close(tfd)

    def whiteout(self, rel_dir: str, victim: str, m: tarfile.TarInfo) -> None:
        if not victim or victim in (".", ".."):
            raise InvalidArgument(f"invalid layer entry {m.name!r}: whiteout of nothing")
        vrel = posixpath.join(rel_dir, victim)
        if vrel in self.added:
            return      # OCI: a whiteout never hides entries of its own layer
        pfd = self.parent_fd(rel_dir, m.name)
        if not self.fresh or vrel in self.whited:
            self._remove(pfd, victim, vrel)
        self.whited.add(vrel)
        if self.overlay:
            try:
                os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
            except PermissionError:
                raise FailedPrecondition("overlay whiteouts need root (CAP_MKNOD); use "
                                         "whiteouts='delete'") from None
            if self.is_root:
                os.chown(victim, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)

    def opaque(self, rel_dir: str, entry: str) -> None:
        dfd = self.parent_fd(rel_dir, entry)      # creates, or replaces a non-directory
        if self.overlay:
            os.setxattr(f"/proc/self/fd/{dfd}", OPAQUE_XATTR, b"y")
            return
        self._empty(rel_dir)

    def _empty(self, rel_dir: str) -> None:
        """Delete mode opaque: drop everything lower layers left in ``rel_dir``."""
        dfd = self.parent_fd(rel_dir, rel_dir)
        lfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
        try:
            names = os.listdir(lfd)
        finally:
            os.close(lfd)
        for name in names:
            crel = posixpath.join(rel_dir, name)
            dfd = self.parent_fd(rel_dir, rel_dir)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if crel in self.added:
                if stat.S_ISDIR(st.st_mode):
                    self._empty(crel)
                continue
            self._remove(dfd, name, crel, st)

    def root_entry(self, m: tarfile.TarInfo) -> None:
        if not m.isdir():
            raise InvalidArgument(f"invalid layer entry {m.name!r}: the root must be a "
                                  "directory")
        if self.is_root:
            os.chown(self.root_fd, m.uid, m.gid)
        self._set_xattrs(m, self.root_fd)
        self.dir_meta[""] = (m.mode & 0o7777, _mtime_ns(m))

    # ---- metadata -------------------------------------------------------------------
    def _meta_path(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        """Owner, xattrs, mode and (non-directories) mtime of ``name`` in ``pfd``."""
        if self.is_root and (m.uid, m.gid) != self.default_owner:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if m.pax_headers:
            self._set_xattrs(m, f"/proc/self/fd/{pfd}/{name}")
        if m.isdir():
            return      # mode and mtime at the end: children are still to come
        if not m.issym():
            os.chmod(name, m.mode & 0o7777, dir_fd=pfd)
        mtime = _mtime_ns(m)
        os.utime(name, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _set_xattrs(self, m: tarfile.TarInfo, where: str | int) -> None:
        for name, value in _xattrs(m):
            try:
                if isinstance(where, int):
                    os.setxattr(where, name, value)
                else:
                    os.setxattr(where, name, value, follow_symlinks=False)
            except OSError as exc:
                # Docker ignores xattrs the filesystem or our privileges do not allow
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                                     errno.EACCES):
                    raise

    def finish_dirs(self) -> None:
        def depth(rel: str) -> int:
            return rel.count("/") + 1 if rel else 0

        for rel in sorted(self.dir_meta, key=depth, reverse=True):
            mode, mtime = self.dir_meta[rel]
            if not rel:
                os.chmod(self.root_fd, mode)
                os.utime(self.root_fd, ns=(mtime, mtime))
                continue
            parent, name = posixpath.split(rel)
            try:
                pfd = self.dirs.open_dir(parent, on_conflict=_gone)
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except (FileNotFoundError, _Gone):
                continue
            if stat.S_ISDIR(st.st_mode):
                os.chmod(name, mode, dir_fd=pfd)
                os.utime(name, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)


class _Gone(Exception):
    pass


def _gone(_pfd: int, _name: str, _rel: str) -> None:
    raise _Gone


def _umask() -> int | None:
    """The process umask, read without changing it (``os.umask`` would race with
    other threads creating files)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _mtime_ns(m: tarfile.TarInfo) -> int:
    if isinstance(m.mtime, int):
        return m.mtime * 1_000_000_000
    return int(round(float(m.mtime) * 1e9))


def apply_layer(stream: BinaryIO, target: Path, *, whiteouts: Whiteouts,
                allow_devices: bool = True, fresh: bool = False,
                prefetch: bool | None = None) -> ApplyResult:
    """Unpack a (possibly compressed) layer tar into the directory ``target``.

    Returns the DiffID (sha256 of the uncompressed stream, computed while reading) and
    sizes.  Bad tarballs raise ``InvalidArgument`` naming the offending entry.  On
    error ``target`` is left partly written: apply into a fresh temporary directory and
    rename it into place on success.  See the module docstring for the rules.
    ``fresh`` promises that ``target`` is an empty directory nothing else writes to,
    which saves a ``stat`` per entry.  ``prefetch`` (default ``PREFETCH``): inflate
    and hash in a second thread (``Prefetch``), a gain only where a core is idle.
    """
    hashing = HashingReader(open_decompressed(stream))
    applier = _Applier(Path(target), whiteouts, allow_devices, fresh)
    source: Prefetch | HashingReader = hashing
    if PREFETCH if prefetch is None else prefetch:
        # inflate and hash in a second thread while this one creates the files
        source = Prefetch(hashing.read, abort=getattr(stream, "abort", None),
                          name="inflate")
    # Prefetch lends its chunks to TarReader (no copy); a bare HashingReader gets a
    # buffer, kept referenced until the end (a collected one closes its raw stream)
    buffered = source if isinstance(source, Prefetch) else \
        io.BufferedReader(source, _READ_BUFSIZE)
    try:
        try:
            applier.apply(TarReader(cast(BinaryIO, buffered)))
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"invalid layer tarball: {exc}") from None
        source.drain()
    finally:
        if source is not hashing:
            source.close()
        applier.close()
    return ApplyResult(hashing.digest, hashing.size, applier.content_size)


def layer_digest(stream: BinaryIO) -> ApplyResult:
    """DiffID and size of a (possibly compressed) layer without unpacking it."""
    hashing = HashingReader(open_decompressed(stream))
    hashing.drain()
    return ApplyResult(hashing.digest, hashing.size)
