"""``docker cp``'s engine side: read and write paths inside a container's filesystem.

Everything is confined to the container's root:

* the root is an fd: ``/proc/PID/root`` of the container's init while it runs (its own
  mount namespace, so volumes, binds and tmpfs are what the container sees), or, for a
  container that is not running, ``/proc/PID/root`` of a short-lived *holder* child
  that mounted the overlay and the container's volumes in a private mount namespace and
  chrooted into it.  Killing the holder unmounts everything with its namespace: no
  mount can be left on the host, even if we crash half-way;
* paths are looked up with openat2(RESOLVE_IN_ROOT) (``sdk.runtime.rootfs_paths``):
  symlinks and ``..`` resolve as they would inside the container, never outside;
* archives are walked with ``O_NOFOLLOW`` fds and extracted by the layer applier's
  confined walk (``sdk.diff.confined``), which never writes through a symlink.

Path rules are Docker's (daemon/archive.go): the last element of a GET/HEAD path is not
followed (the stat reports it as a symlink, with ``linkTarget`` resolved in the
container), a trailing ``/`` or ``/.`` follows it; PUT follows it, and the destination
must be an existing directory.
"""

from __future__ import annotations

import datetime
import errno
import os
import posixpath
import signal
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sdk.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, RuntimeFailure

if TYPE_CHECKING:
    from sdk.engine import Engine

CHUNK = 1 << 18
MAX_SYMLINKS = 40
#: Go's os.FileMode type bits (the stat header carries a FileMode, not st_mode)
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


# ---- paths and stat ------------------------------------------------------------------
def container_path(path: str) -> str:
    """Docker's ``PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)``."""
    if not path:
        raise InvalidArgument("no path given: the container path must not be empty")
    if "\x00" in path:
        raise InvalidArgument(f"invalid container path {path!r}: it contains a NUL byte")
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if clean == "//":
        clean = "/"
    if posixpath.basename(path) == "." and posixpath.basename(clean) != ".":
        clean += "." if clean.endswith("/") else "/."
    if path.endswith("/") and not clean.endswith("/"):
        clean += "/"
    return clean


def go_file_mode(mode: int) -> int:
    out = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFIFO: GO_PIPE,
            stat.S_IFSOCK: GO_SOCKET, stat.S_IFBLK: GO_DEVICE,
            stat.S_IFCHR: GO_DEVICE | GO_CHARDEV}.get(kind, 0)
    for bit, go in ((stat.S_ISUID, GO_SETUID), (stat.S_ISGID, GO_SETGID),
                    (stat.S_ISVTX, GO_STICKY)):
        if mode & bit:
            out |= go
    return out


def go_time(seconds_ns: int) -> str:
    """RFC 3339 with nanoseconds, as Go's time.Time marshals to JSON."""
    secs, nanos = divmod(seconds_ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(secs, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{base}{frac}Z"


@dataclass(frozen=True)
class PathStat:
    """The ``X-Docker-Container-Path-Stat`` document (docker-py's stat dict)."""

    name: str
    size: int
    mode: int            # Go FileMode bits
    mtime: str
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & GO_DIR)

    @property
    def is_symlink(self) -> bool:
        return bool(self.mode & GO_SYMLINK)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "mode": self.mode,
                "mtime": self.mtime, "linkTarget": self.link_target}


def _go_base(abs_path: str) -> str:
    """Go's filepath.Base: trailing slashes ignored, "/" for the root."""
    stripped = abs_path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def resolve_in_scope(root_fd: int, abs_path: str) -> str:
    """The container-absolute path ``abs_path`` names once every symlink is followed
    inside the root (Docker's FollowSymlinkInScope): what ``linkTarget`` reports."""
    done: list[str] = []
    pending = [c for c in abs_path.split("/") if c and c != "."]
    hops = 0
    while pending:
        comp = pending.pop(0)
        if comp == "..":
            if done:
                done.pop()
            continue
        cur = "/" + "/".join([*done, comp])
        try:
            target = _readlink_in_root(root_fd, cur)
        except OSError:
            target = None
        if target is None:
            done.append(comp)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise InvalidArgument(f"too many levels of symbolic links in {abs_path!r}")
        if target.startswith("/"):
            done = []
        pending = [c for c in target.split("/") if c and c != "."] + pending
    return "/" + "/".join(done)


def _readlink_in_root(root_fd: int, path: str) -> str | None:
    """readlink of ``path``'s last element (parents resolved in the root), or None
    when it is not a symlink."""
    from sdk.runtime.rootfs_paths import open_in_root

    parent, name = posixpath.split(path)
    pfd = open_in_root(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        return os.readlink(name, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else None
    finally:
        os.close(pfd)


@dataclass
class Target:
    """An entry of the container: ``name`` in directory ``dir_fd`` ("." = the dir)."""

    dir_fd: int
    name: str
    st: os.stat_result

    def close(self) -> None:
        os.close(self.dir_fd)


def _not_found(path: str, cid: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {cid}")


def lookup(root_fd: int, abs_path: str, cid: str) -> Target:
    """The entry ``abs_path`` names, its last element not followed (unless the path ends
    in ``/`` or ``/.``)."""
    from sdk.runtime.rootfs_paths import open_in_root

    head, base = abs_path.rsplit("/", 1)
    try:
        dfd = open_in_root(root_fd, head or "/", os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise _not_found(abs_path, cid) from None
        raise
    name = base if base and base != "." else "."
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError as exc:
        os.close(dfd)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise _not_found(abs_path, cid) from None
        raise
    return Target(dfd, name, st)


def path_stat(root_fd: int, abs_path: str, target: Target) -> PathStat:
    link = ""
    if stat.S_ISLNK(target.st.st_mode):
        link = resolve_in_scope(root_fd, abs_path)
    return PathStat(_go_base(abs_path), target.st.st_size, go_file_mode(target.st.st_mode),
                    go_time(target.st.st_mtime_ns), link)


# ---- the container's root --------------------------------------------------------------
class RootView:
    """An fd of the container's root; ``close()`` releases what holds it."""

    def __init__(self, fd: int, holder: int = 0) -> None:
        self.fd = fd
        self.holder = holder

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.holder:
            try:
                os.kill(self.holder, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.holder, 0)
            self.holder = 0

    def __enter__(self) -> RootView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_root(engine: Engine, doc: dict[str, Any]) -> RootView:
    """The root of container ``doc`` as its processes see it (see the module doc)."""
    try:
        pid = engine.tasks.running_pid(doc)
    except Conflict:
        pid = 0
    if pid:
        try:
            return RootView(os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY
                                    | os.O_CLOEXEC))
        except FileNotFoundError:
            pass            # it just exited: mount it like a stopped one
    return _hold(engine, doc)


def _volume_binds(doc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    out = []
    for m in doc.get("Mounts") or []:
        if m.get("Type") in ("volume", "bind") and m.get("Source") and m.get("Destination"):
            out.append((str(m["Source"]), str(m["Destination"]), bool(m.get("RW", True))))
    return sorted(out, key=lambda b: b[1].count("/"))    # parents before children


def _hold(engine: Engine, doc: dict[str, Any]) -> RootView:
    from sdk.containers.service import rootfs_from
    from sdk.runtime import linux, rootfs_paths  # noqa: F401 - loaded before the fork

    rootfs = rootfs_from(doc)
    binds = _volume_binds(doc)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the holder
        try:
            os.close(ready_r)
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
            _mount_view(rootfs, binds)
            os.write(ready_w, b"\0")
            while True:
                signal.pause()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            try:
                os.write(ready_w, (str(exc) or type(exc).__name__).encode()[:4000])
            finally:
                os._exit(1)
    os.close(ready_w)
    try:
        msg = os.read(ready_r, 4096)
    finally:
        os.close(ready_r)
    view = RootView(-1, pid)
    if msg != b"\0":
        view.close()
        raise RuntimeFailure(f"mounting the filesystem of container {doc['Id'][:12]}: "
                             f"{msg.decode(errors='replace') or 'the helper died'}")
    try:
        view.fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        view.close()
        raise
    return view


def _mount_view(rootfs: Any, binds: list[tuple[str, str, bool]]) -> None:
    """In the holder: a private mount namespace with the rootfs and volumes, chrooted."""
    from sdk.runtime import linux
    from sdk.runtime.rootfs_paths import ensure_in_root, open_in_root

    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("", "/", "", linux.MS_REC | linux.MS_PRIVATE)
    merged = rootfs.path
    if rootfs.is_overlay:
        os.chdir(rootfs.chdir)
        linux.mount("overlay", merged, "overlay", 0,
                    f"lowerdir={':'.join(rootfs.lowerdirs)},upperdir={rootfs.upperdir},"
                    f"workdir={rootfs.workdir}")
    else:
        linux.mount(merged, merged, None, linux.MS_BIND | linux.MS_REC)
    root_fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for source, dest, rw in binds:
        fd = ensure_in_root(root_fd, dest, directory=os.path.isdir(source))
        try:
            linux.mount(source, linux.fd_path(fd), None, linux.MS_BIND | linux.MS_REC)
        finally:
            os.close(fd)
        if not rw:
            fd = open_in_root(root_fd, dest)
            try:
                linux.mount(None, linux.fd_path(fd), None,
                            linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
            finally:
                os.close(fd)
    if rootfs.readonly:
        linux.mount(None, merged, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    os.chroot(merged)
    os.chdir("/")


# ---- GET / HEAD ----------------------------------------------------------------------
def stat_path(engine: Engine, ref: str, path: str) -> PathStat:
    """``HEAD /containers/{id}/archive``."""
    abs_path = container_path(path)
    doc = engine.tasks.get(ref)
    with open_root(engine, doc) as view:
        target = lookup(view.fd, abs_path, doc["Name"].lstrip("/"))
        try:
            return path_stat(view.fd, abs_path, target)
        finally:
            target.close()


def get_archive(engine: Engine, ref: str, path: str) -> tuple[Iterator[bytes], PathStat]:
    """``GET /containers/{id}/archive``: (tar chunks, stat).  Errors about the path are
    raised here, before any chunk; the root stays held until the chunks are consumed or
    the iterator is closed."""
    abs_path = container_path(path)
    doc = engine.tasks.get(ref)
    view = open_root(engine, doc)
    try:
        target = lookup(view.fd, abs_path, doc["Name"].lstrip("/"))
    except BaseException:
        view.close()
        raise
    try:
        pstat = path_stat(view.fd, abs_path, target)
    except BaseException:
        target.close()
        view.close()
        raise
    # Docker's rebase: entries start with the requested name ("" for the root)
    base = _go_base(abs_path)
    prefix = "" if base == "/" else base
    top = prefix or "/"

    walk = _Walk(_own_devices(view.fd, doc))

    def write(out: IO[bytes]) -> None:
        from sdk.diff.tarwriter import TarWriter

        tw = TarWriter(out)
        try:
            walk.add(tw, target.dir_fd, target.name, top, target.st)
        except BaseException:
            tw._tar.fileobj.closed = True   # noqa: SLF001 - no flush into a dead pipe at GC
            raise
        tw.close()

    def release() -> None:
        target.close()
        view.close()

    chunks = _pipe_chunks(write, release)
    next(chunks)        # primed: from here on, closing the iterator releases the root
    return chunks, pstat


def _own_devices(root_fd: int, doc: dict[str, Any]) -> set[int]:
    """Filesystems that are the container's content: its root and its volumes and
    binds.  The walk never descends into others (a running container's /proc, /sys,
    /dev, tmpfs), as Docker's archive view has only the rootfs and the volumes."""
    from sdk.runtime.rootfs_paths import open_in_root

    devs = {os.fstat(root_fd).st_dev}
    for _source, dest, _rw in _volume_binds(doc):
        try:
            fd = open_in_root(root_fd, dest)
        except OSError:
            continue
        try:
            devs.add(os.fstat(fd).st_dev)
        finally:
            os.close(fd)
    return devs


@dataclass
class _Walk:
    devices: set[int]

    def add(self, tw: Any, dir_fd: int, name: str, arcname: str,
            st: os.stat_result) -> None:
        try:
            tw.add(f"/proc/self/fd/{dir_fd}/{name}", arcname, st)
        except FileNotFoundError:
            return          # removed while we walked
        if not stat.S_ISDIR(st.st_mode) or st.st_dev not in self.devices:
            return
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryError):
            return          # replaced while we walked
        try:
            for child in sorted(os.listdir(fd)):
                try:
                    cst = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                self.add(tw, fd, child, f"{arcname.rstrip('/')}/{child}", cst)
        finally:
            os.close(fd)


def _pipe_chunks(write: Callable[[IO[bytes]], None],
                 release: Callable[[], None]) -> Iterator[bytes]:
    """Run ``write(out)`` in a thread and yield what it writes; closing the iterator
    early breaks the pipe and stops the writer.  The first item is b"" (priming)."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(w, "wb") as out:
                write(out)
        except BrokenPipeError:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised by the reader
            errors.append(exc)

    thread = threading.Thread(target=produce, name="berth-cp", daemon=True)
    try:
        yield b""
        thread.start()
        with os.fdopen(r, "rb", buffering=0) as inp:
            r = -1
            while chunk := inp.read(CHUNK):
                yield chunk
    finally:
        if r >= 0:
            os.close(r)
        if thread.is_alive() or thread.ident is not None:
            thread.join()
        else:
            os.close(w)
        release()
    if errors:
        raise RuntimeFailure(f"reading the container's files failed: {errors[0]}")


# ---- PUT -------------------------------------------------------------------------------
def put_archive(engine: Engine, ref: str, path: str, data: IO[bytes] | bytes, *,
                no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
    """``PUT /containers/{id}/archive``: extract the tar ``data`` into directory ``path``."""
    import io

    abs_path = container_path(path)
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    doc = engine.tasks.get(ref)
    cid = doc["Name"].lstrip("/")
    with open_root(engine, doc) as view:
        from sdk.runtime.rootfs_paths import open_in_root

        try:
            dfd = open_in_root(view.fd, abs_path, os.O_PATH)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise _not_found(abs_path, cid) from None
            raise
        try:
            if not stat.S_ISDIR(os.fstat(dfd).st_mode):
                raise InvalidArgument(f"extraction point {abs_path} is not a directory")
            check_archive(stream)
            owner = None
            if copy_uid_gid:
                from sdk.runtime.users import lookup as user_lookup

                user = user_lookup(view.fd, doc["Config"].get("User") or "")
                owner = (user.uid, user.gid)
            try:
                extract(stream, f"/proc/self/fd/{dfd}", owner=owner,
                        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
            except OSError as exc:
                if exc.errno == errno.EROFS:
                    raise PermissionDenied(f"cannot write to {abs_path} in container {cid}: "
                                           "the container rootfs or the volume is marked "
                                           "read-only") from None
                raise
        finally:
            os.close(dfd)


def check_archive(stream: IO[bytes]) -> None:
    """A first pass over a seekable tar (a no-op otherwise): a malformed archive, an
    entry climbing out of the destination or of a kind tar cannot hold is refused
    before anything is written (bad input changes nothing)."""
    import gzip
    import io
    import lzma
    import zlib

    from sdk.diff.apply import clean_name
    from sdk.diff.compression import open_decompressed
    from sdk.diff.tarstream import TarReader

    try:
        if not stream.seekable():
            return
        start = stream.tell()
    except (AttributeError, OSError):
        return
    try:
        reader = TarReader(io.BufferedReader(open_decompressed(stream), CHUNK))
        for m in reader:
            clean_name(m.name, m.name)
            if m.islnk():
                clean_name(m.linkname, m.name, "hardlink target")
            elif not (m.isreg() or m.isdir() or m.issym() or m.isfifo() or m.ischr()
                      or m.isblk()):
                raise InvalidArgument(f"invalid tar entry {m.name!r}: unsupported type "
                                      f"{m.type!r}")
    except (tarfile.ReadError, EOFError, zlib.error, lzma.LZMAError,
            gzip.BadGzipFile) as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from None
    stream.seek(start)


def extract(stream: IO[bytes], target: str | Path, *, owner: tuple[int, int] | None = None,
            no_overwrite_dir_non_dir: bool = False,
            rename: Callable[[str], str] | None = None, allow_devices: bool = True) -> None:
    """Unpack a (possibly compressed) tar into the directory ``target`` without ever
    leaving it (also used by ``berth cp`` on the host side).  ``rename`` maps entry
    names (and hardlink targets) first: docker's rebasing of a copied path's name.
    ``allow_devices=False`` skips device nodes (what the host side of ``berth cp`` asks:
    a container must not plant a readable disk node on the host)."""
    import io

    from sdk.diff.compression import open_decompressed
    from sdk.diff.tarstream import TarReader

    extractor = _extractor_class()(Path(target), owner, no_overwrite_dir_non_dir,
                                   allow_devices)
    extractor.rename = rename
    try:
        try:
            extractor.apply(TarReader(io.BufferedReader(open_decompressed(stream), CHUNK)))
        except tarfile.ReadError as exc:
            raise InvalidArgument(f"invalid tar archive: {exc}") from None
    finally:
        extractor.close()


_EXTRACTOR: Any = None


def _extractor_class() -> Any:
    """The layer applier with ``docker cp``'s rules (built lazily: apply.py is heavy)."""
    global _EXTRACTOR
    if _EXTRACTOR is not None:
        return _EXTRACTOR
    from sdk.diff import apply
    from sdk.diff.whiteouts import WHITEOUT_PREFIX

    class Extractor(apply._Applier):  # noqa: SLF001 - same rules, three differences
        """Differences from a layer: ``.wh.`` names are plain files (no whiteouts);
        an existing non-directory in an entry's path is an error, never replaced; and
        optionally a fixed owner and no dir/non-dir overwrites."""

        def __init__(self, target: Path, owner: tuple[int, int] | None,
                     no_overwrite: bool, allow_devices: bool) -> None:
            super().__init__(target, "delete", allow_devices)
            self.owner = owner
            self.no_overwrite = no_overwrite
            self.rename: Callable[[str], str] | None = None

        def _replace_parent(self, pfd: int, name: str, rel: str, entry: str) -> None:
            raise InvalidArgument(f"cannot extract {entry!r}: {rel!r} exists and is not "
                                  "a directory")

        def entry(self, tar: Any, m: tarfile.TarInfo) -> None:
            if self.owner is not None:
                m.uid, m.gid = self.owner
            if self.rename is not None:
                m.name = self.rename(m.name)
                if m.islnk():
                    m.linkname = self.rename(m.linkname)
            rel = apply.clean_name(m.name, m.name)
            rel_dir, name = posixpath.split(rel)
            if self.no_overwrite and rel:
                self._check_overwrite(rel_dir, name, m)
            if rel and name.startswith(WHITEOUT_PREFIX):
                if not m.isreg():
                    raise InvalidArgument(f"cannot extract {m.name!r}: only regular files "
                                          f"may be named {WHITEOUT_PREFIX}*")
                pfd = self.parent_fd(rel_dir, m.name)
                self._clear(pfd, name, rel, False)
                self.added.add(rel)
                self.regular(tar, m, pfd, name)
                return
            super().entry(tar, m)

        def _check_overwrite(self, rel_dir: str, name: str, m: tarfile.TarInfo) -> None:
            def nothing(_pfd: int, _name: str, _rel: str) -> None:
                raise FileNotFoundError

            try:
                pfd = self.dirs.open_dir(rel_dir, on_conflict=nothing)
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode) and not m.isdir():
                raise InvalidArgument(f"cannot overwrite directory {name!r} with "
                                      f"non-directory {m.name!r}")
            if not stat.S_ISDIR(st.st_mode) and m.isdir():
                raise InvalidArgument(f"cannot overwrite non-directory {name!r} with "
                                      f"directory {m.name!r}")

    _EXTRACTOR = Extractor
    return Extractor
