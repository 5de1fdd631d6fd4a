"""``berth cp``: docker's copy between a container and the host (or a tar on stdio).

The container side is :mod:`sdk.containers.archive`; this module adds the CLI's rules
(docker/cli ``cp.go`` + moby ``pkg/archive/copy.go``): what becomes of the source's
name at the destination, and what must already exist there.
"""

from __future__ import annotations

import os
import posixpath
import sys
import tarfile
import tempfile
from collections.abc import Callable
from typing import IO, Any

from sdk.cli.common import engine
from sdk.cli.flags import Flag, Spec, UsageError, parse

CP = Spec("cp", "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                "        berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
          [Flag("archive", "a", help="Archive mode (copy all uid/gid information)"),
           Flag("follow-link", "L", help="Always follow symbol link in SRC_PATH"),
           Flag("quiet", "q", help="Suppress progress output during copy")],
          min_args=2, max_args=2,
          summary="Copy files/folders between a container and the local filesystem\n\n"
                  "Use '-' as the source to read a tar archive from stdin and extract it\n"
                  "to a directory destination in a container.\nUse '-' as the destination "
                  "to stream a tar archive of a container source to stdout.")
SPOOL = 16 << 20


def split_arg(arg: str) -> tuple[str, str]:
    """("container", "path") for CONTAINER:PATH, ("", path) for a local path."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    container, _, path = arg.partition(":")
    return container, path


def archive_base(path: str) -> str:
    """The name a path's archive entries start with ("." for ``dir/.``, "" for /)."""
    if posixpath.basename(path) == "." and path not in (".",):
        return "."
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else ""


def rebase(old: str, new: str) -> Callable[[str], str]:
    """Go's RebaseArchiveEntries: the leading ``old`` of each name becomes ``new``."""
    def rename(name: str) -> str:
        if old == "":
            return new + ("" if name.startswith("/") else "/") + name
        if name == old or name.startswith(old + "/"):
            return new + name[len(old):]
        return name
    return rename


class CpError(UsageError):
    """What docker's CLI finds wrong itself (a missing local path or directory, two or
    no container arguments): printed as is, exit status 1 like ``docker cp``."""

    exit_code = 1


def cmd_cp(argv: list[str]) -> int:
    opts, args = parse(CP, argv)
    from sdk.errors import InvalidArgument

    (src_c, src), (dst_c, dst) = split_arg(args[0]), split_arg(args[1])
    if src_c and dst_c:
        raise CpError("copying between containers is not supported")
    if not src_c and not dst_c:
        raise CpError("must specify at least one container source")
    try:
        if src_c:
            return copy_from(src_c, src, dst, follow=opts["follow_link"])
        return copy_to(src, dst_c, dst, follow=opts["follow_link"],
                       copy_owner=opts["archive"])
    except InvalidArgument as exc:
        # docker cp exits 1 for every failure past its flags, the daemon's included
        raise CpError(f"Error: {exc.message}") from None


def copy_from(container: str, src: str, dst: str, *, follow: bool) -> int:
    from sdk.containers import archive
    from sdk.errors import InvalidArgument

    eng = engine()
    name = archive_base(archive.container_path(src))
    if follow:
        st = archive.stat_path(eng, container, src)
        if st.is_symlink:       # copied under the link's name (docker's GetRebaseName)
            src = st.link_target
    chunks, st = archive.get_archive(eng, container, src)
    base = archive_base(archive.container_path(src))
    try:
        if dst == "-":
            with os.fdopen(os.dup(1), "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            return 0
        with tempfile.SpooledTemporaryFile(SPOOL) as spool:
            for chunk in chunks:
                spool.write(chunk)
            spool.seek(0)
            owner = (os.geteuid(), os.getegid())
            if os.path.isdir(dst):
                archive.extract(spool, dst, owner=owner, no_overwrite_dir_non_dir=True,
                                allow_devices=False,
                                rename=rebase(base, name) if name != base else None)
                return 0
            if os.path.exists(dst) and st.is_dir:
                raise InvalidArgument(f"cannot copy a directory to a file: {dst}")
            if not os.path.exists(dst) and dst.endswith("/") and not st.is_dir:
                raise InvalidArgument(f"destination directory {dst} does not exist")
            parent = os.path.dirname(os.path.abspath(dst.rstrip("/")))
            if not os.path.isdir(parent):
                raise InvalidArgument(f"destination directory {parent} does not exist")
            archive.extract(spool, parent, owner=owner, no_overwrite_dir_non_dir=True,
                            allow_devices=False,
                            rename=rebase(base, os.path.basename(dst.rstrip("/"))))
    finally:
        chunks.close()  # type: ignore[attr-defined]
    return 0


def copy_to(src: str, container: str, dst: str, *, follow: bool, copy_owner: bool) -> int:
    from sdk.containers import archive
    from sdk.errors import InvalidArgument, NotFound

    eng = engine()
    if src == "-":      # spooled, so that a bad archive is refused before any write
        with tempfile.SpooledTemporaryFile(SPOOL) as spool:
            while chunk := sys.stdin.buffer.read(1 << 18):
                spool.write(chunk)
            spool.seek(0)
            archive.put_archive(eng, container, dst, spool, copy_uid_gid=copy_owner)
        return 0
    local = os.path.realpath(src) if follow else src
    if not os.path.lexists(local):
        raise InvalidArgument(f"stat {src}: no such file or directory")
    src_is_dir = os.path.isdir(local) and (follow or not os.path.islink(local))
    try:
        st = archive.stat_path(eng, container, dst)
        if st.is_symlink:       # the CLI follows a symlink destination
            st = archive.stat_path(eng, container, st.link_target)
        exists, dst_is_dir = True, st.is_dir
    except NotFound:
        exists, dst_is_dir = False, False
    name = archive_base(local) or "."
    if exists and dst_is_dir:
        target, arcname = dst, name
    elif exists and src_is_dir:
        raise InvalidArgument(f"cannot copy a directory to a file: {dst}")
    else:
        if not exists and dst.endswith("/") and not src_is_dir:
            raise InvalidArgument(f"destination directory {dst} does not exist")
        stripped = archive.container_path(dst).rstrip("/.") or "/"
        target, arcname = posixpath.dirname(stripped) or "/", posixpath.basename(stripped)
    with tempfile.SpooledTemporaryFile(SPOOL) as spool:
        _host_tar(local, arcname, spool)
        spool.seek(0)
        archive.put_archive(eng, container, target, spool, copy_uid_gid=copy_owner)
    return 0


def _host_tar(path: str, arcname: str, out: IO[bytes]) -> None:
    """A tar of ``path`` named ``arcname``; owned by root, as docker cp writes it."""
    def owner(info: tarfile.TarInfo) -> Any:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=arcname, recursive=True, filter=owner)
