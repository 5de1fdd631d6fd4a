"""The build context: a directory, a tar stream, or nothing (a Dockerfile on stdin).

tarfile, tempfile and shutil are imported where a tar context needs them: a cached
build of a directory never does (they cost ~10 ms of its start)."""

from __future__ import annotations

import io
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sdk.build.dockerignore import Matcher, parse_patterns
from sdk.errors import InvalidArgument, NotFound

_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass
class BuildContext:
    root: Path
    dockerfile: str
    ignore: Matcher
    _tmp: str | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._tmp:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ignored(self, rel: str) -> bool:
        return bool(self.ignore) and self.ignore.matches(rel)


def looks_like_tar(head: bytes) -> bool:
    return head.startswith(_COMPRESSED_MAGIC) or (len(head) > 262 and
                                                  head[257:262] == b"ustar")


def _matcher(root: Path) -> Matcher:
    try:
        text = (root / ".dockerignore").read_text()
    except FileNotFoundError:
        return Matcher([])
    return Matcher(parse_patterns(text))


def _read_dockerfile(root: Path, name: str) -> str:
    path = Path(name) if os.path.isabs(name) else root / name
    try:
        return path.read_text()
    except FileNotFoundError:
        raise NotFound(f"Cannot locate specified Dockerfile: {name}") from None
    except IsADirectoryError:
        raise InvalidArgument(f"the Dockerfile ({name}) cannot be a directory") from None


def from_directory(path: str, dockerfile: str | None = None,
                   dockerfile_text: str | None = None) -> BuildContext:
    root = Path(path).absolute()
    if not root.is_dir():
        raise InvalidArgument(f"unable to prepare context: path {path!r} not found")
    if dockerfile_text is None:
        name = dockerfile or "Dockerfile"
        if dockerfile and not os.path.isabs(dockerfile) and os.path.exists(dockerfile) \
                and not (root / dockerfile).exists():
            name = os.path.abspath(dockerfile)      # docker CLI: -f is relative to cwd
        dockerfile_text = _read_dockerfile(root, name)
    return BuildContext(root, dockerfile_text, _matcher(root))


def from_stream(stream: IO[bytes], dockerfile: str | None = None,
                dockerfile_text: str | None = None) -> BuildContext:
    """``docker build -``: a (compressed) tar of the context, or just a Dockerfile."""
    data_head = b""
    while len(data_head) < 512:         # a socket or a pipe may return less at once
        chunk = stream.read(512 - len(data_head))
        if not chunk:
            break
        data_head += chunk
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="berth-build-ctx-")
    try:
        root = Path(tmp) / "ctx"
        root.mkdir()
        if looks_like_tar(data_head):
            _extract(io.BufferedReader(_Prefixed(data_head, stream)), root)  # type: ignore[arg-type]
            if dockerfile_text is None:
                dockerfile_text = _read_dockerfile(root, dockerfile or "Dockerfile")
            return BuildContext(root, dockerfile_text, _matcher(root), tmp)
        if dockerfile_text is not None:
            raise InvalidArgument("the context on stdin must be a tar archive when the "
                                  "Dockerfile is given too")
        text = (data_head + stream.read()).decode("utf-8", "replace")
        return BuildContext(root, text, Matcher([]), tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_git_url(src: str) -> bool:
    """docker's ``urlutil.IsGitURL``: git@, git://, github.com/ or a ``.git`` URL."""
    if src.startswith(("git@", "git://", "github.com/")):
        return True
    path = src.split("#", 1)[0]
    return src.startswith(("http://", "https://")) and path.endswith(".git")


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def from_url(url: str, dockerfile: str | None = None,
             dockerfile_text: str | None = None) -> BuildContext:
    """A remote context, as ``docker build URL``: a (compressed) tar is the context, a
    text file is the Dockerfile alone.  Git repositories are refused (no git here)."""
    import urllib.error
    import urllib.request

    if is_git_url(url):
        raise InvalidArgument(f"unable to prepare context: {url} is a git repository; "
                              "berth does not clone repositories: clone it and build the "
                              "directory")
    try:
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - http(s) only
    except urllib.error.HTTPError as exc:
        raise InvalidArgument(f"unable to prepare context: unable to download remote "
                              f"context {url}: {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidArgument(f"unable to prepare context: unable to download remote "
                              f"context {url}: {reason}") from None
    with response:
        return from_stream(response, dockerfile, dockerfile_text)


class _Prefixed(io.RawIOBase):
    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:   # type: ignore[override]
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[:len(data)] = data
        return len(data)


def _extract(stream: IO[bytes], root: Path) -> None:
    import tarfile

    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            name = posixpath.normpath(member.name.lstrip("/"))
            if name.startswith("..") or name == ".":
                continue
            member.name = name
            member.uid = member.gid = 0
            if member.islnk() or member.issym():
                target = member.linkname
                if member.islnk():
                    target = posixpath.normpath(target.lstrip("/"))
                    if target.startswith(".."):
                        continue
                    member.linkname = target
            if member.isdev():
                continue
            tar.extract(member, root, set_attrs=True, filter="tar")
