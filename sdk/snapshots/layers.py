"""Unpacked layers, each stored once and shared by every image and container using it.

overlay (Docker's overlay2 layout)::

    overlay/<chain hex>/diff     this layer's own files, with overlay whiteouts
    overlay/<chain hex>/link     short id; overlay/l/<short id> -> ../<chain hex>/diff
    overlay/<chain hex>/parent   parent chain id ("" for a base layer)
    overlay/<chain hex>/size     bytes of the layer's own content

The short links keep a container's ``lowerdir=l/A:l/B:...`` (resolved relative to
``overlay/``, see ``Rootfs.chdir``) small enough for 127 layers in one mount-data page.

vfs: ``vfs/<chain hex>/fs`` holds the full materialised tree (a copy of the parent's
tree with the layer applied, whiteouts as deletions), copied again per container.

Containers: ``containers/<id>/{upper,work,merged}`` (overlay) or ``containers/<id>/fs``.

Crash safety: everything is built in a ``.tmp-<pid>-*`` directory and renamed into
place, and removed by renaming to ``.trash-<pid>-*`` first, so a layer is either
complete or absent; ``cleanup_partial`` deletes what a dead process left.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from sdk.content.digest import check_digest
from sdk.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from sdk.snapshots import fsutil
from sdk.snapshots.probe import overlay_supported

if TYPE_CHECKING:   # tarfile & co. stay off the container start path
    from sdk.diff.apply import ApplyResult
    from sdk.runtime.spec import Rootfs  # imported where used: ~20 ms of dataclasses

__all__ = ["LayerStore", "StagedLayer", "chain_id", "overlay_supported"]

Driver = Literal["overlay", "vfs"]
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_PARTIAL = (".tmp-", ".trash-")


@dataclass(frozen=True)
class StagedLayer:
    """A layer unpacked into ``path`` (a ``.tmp-`` dir) but not published yet."""

    path: Path
    result: ApplyResult


def chain_id(diff_ids: Sequence[str]) -> str:
    """OCI ChainID: chain(1) = diff(1); chain(n) = sha256(chain(n-1) + " " + diff(n))."""
    if not diff_ids:
        raise InvalidArgument("chain id of no layers")
    import hashlib

    current = diff_ids[0]
    check_digest(current, "diff id")
    for diff in diff_ids[1:]:
        check_digest(diff, "diff id")
        current = "sha256:" + hashlib.sha256(f"{current} {diff}".encode()).hexdigest()
    return current


def _check_container_id(container_id: str) -> str:
    if not isinstance(container_id, str) or not _CONTAINER_ID.fullmatch(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


def _pid_alive(name: str) -> bool:
    """Whether the process named in ``.tmp-<pid>-...`` / ``.trash-<pid>-...`` lives."""
    parts = name.split("-")
    return len(parts) > 1 and parts[1].isdigit() and os.path.exists(f"/proc/{parts[1]}")


def _partial_name(kind: str) -> str:
    return f"{kind}{os.getpid()}-{secrets.token_hex(6)}"


class LayerStore:
    def __init__(self, root: Path, driver: Driver) -> None:
        if driver not in ("overlay", "vfs"):
            raise InvalidArgument(f"unknown storage driver {driver!r} (overlay or vfs)")
        self.root = Path(root)
        self.driver: Driver = driver
        self.base = self.root / driver
        self.links = self.base / "l"
        self.cdir = self.root / "containers"
        self._content_name = "diff" if driver == "overlay" else "fs"

    # ---- layers ---------------------------------------------------------------------
    def _dir(self, chain: str) -> Path:
        return self.base / check_digest(chain, "chain id")

    def _content(self, chain: str) -> Path:
        return self._dir(chain) / self._content_name

    def exists(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / "size").is_file()

    def create(self, chain_id: str, parent: str | None, stream: BinaryIO) -> ApplyResult:
        """Unpack ``stream`` as layer ``chain_id`` on top of ``parent``.

        Unpacks into a temp dir and renames it into place, so concurrent creators of
        the same layer both succeed (the later one drops its copy).  The caller checks
        the returned diff_id against the one it expected.
        """
        from sdk.diff.apply import ApplyResult, apply_layer, layer_digest

        final = self._dir(chain_id)
        if parent is not None and not self.exists(parent):
            raise NotFound(f"parent layer {parent} of {chain_id} not found")
        if self.exists(chain_id):
            digest = layer_digest(stream)
            return ApplyResult(digest.diff_id, digest.size, self.size(chain_id))
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / _partial_name(".tmp-")
        try:
            content = tmp / self._content_name
            content.mkdir(parents=True, mode=0o755)
            fresh = self.driver == "overlay" or parent is None
            if not fresh:
                fsutil.copy_tree(self._content(parent), content)
            result = apply_layer(stream, content, whiteouts="overlay"
                                 if self.driver == "overlay" else "delete", fresh=fresh)
        except BaseException:
            fsutil.remove_tree(tmp)
            raise
        self._publish(tmp, final, chain_id, parent, result)
        return result

    # ---- staged layers (parallel unpacking, overlay only) --------------------------------
    @property
    def stages_independently(self) -> bool:
        """Whether a layer can be unpacked before its parent exists (overlay: each
        layer's ``diff`` holds only its own entries; vfs copies the parent's tree)."""
        return self.driver == "overlay"

    def stage(self, stream: BinaryIO, *, prefetch: bool | None = None,
              in_worker: bool = False) -> StagedLayer:
        """Unpack ``stream`` into a new temp dir, before its chain id or parent is known
        to exist; ``commit_staged`` publishes it, ``discard`` drops it.  A crash leaves
        only a ``.tmp-<pid>-*`` dir that ``cleanup_partial`` removes.  ``in_worker``:
        unpack in a child process (``sdk.diff.worker``), so layers unpack in parallel."""
        from sdk.diff.apply import apply_layer
        from sdk.diff.worker import apply_in_worker

        if not self.stages_independently:
            raise InvalidArgument(f"the {self.driver} driver cannot unpack a layer before "
                                  "its parent")
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / _partial_name(".tmp-")
        try:
            content = tmp / self._content_name
            content.mkdir(parents=True, mode=0o755)
            if in_worker:
                result = apply_in_worker(stream, content, whiteouts="overlay", fresh=True)
            else:
                result = apply_layer(stream, content, whiteouts="overlay", fresh=True,
                                     prefetch=prefetch)
        except BaseException:
            fsutil.remove_tree(tmp)
            raise
        return StagedLayer(tmp, result)

    def commit_staged(self, staged: StagedLayer, chain_id: str,
                      parent: str | None) -> ApplyResult:
        """Publish a staged layer as ``chain_id`` on top of ``parent`` (which must
        exist); if another creator published the same chain id first, the staged copy
        is dropped.  The caller has checked ``staged.result.diff_id``."""
        final = self._dir(chain_id)
        try:
            if parent is not None and not self.exists(parent):
                raise NotFound(f"parent layer {parent} of {chain_id} not found")
            if self.exists(chain_id):
                self.discard(staged)
                return staged.result
            self._publish(staged.path, final, chain_id, parent, staged.result)
        except BaseException:
            self.discard(staged)
            raise
        return staged.result

    def discard(self, staged: StagedLayer) -> None:
        fsutil.remove_tree(staged.path)

    def _publish(self, tmp: Path, final: Path, chain_id: str, parent: str | None,
                 result: ApplyResult) -> None:
        """Write the metadata of the unpacked layer in ``tmp`` and rename it to
        ``final``; losing a race to another creator drops ``tmp``."""
        link: Path | None = None
        try:
            (tmp / "parent").write_text(parent or "")
            (tmp / "size").write_text(str(result.content_size))
            if self.driver == "overlay":
                link = self._new_link(tmp, final.name)
            try:
                os.rename(tmp, final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and self.exists(chain_id):
                    self._drop(tmp, link)       # another creator won the race
                    return
                raise
        except BaseException:
            self._drop(tmp, link)
            raise

    def _new_link(self, tmp: Path, hexid: str) -> Path:
        """Write ``tmp/link`` and create ``l/<short>`` (dangling until the rename)."""
        self.links.mkdir(parents=True, exist_ok=True)
        for _ in range(16):
            short = "".join(secrets.choice(_B32) for _ in range(26))
            (tmp / "link").write_text(short)
            path = self.links / short
            try:
                os.symlink(f"../{hexid}/diff", path)
            except FileExistsError:
                continue
            return path
        raise RuntimeFailure(f"cannot allocate a short link name in {self.links}")

    @staticmethod
    def _drop(tmp: Path, link: Path | None) -> None:
        if link is not None:
            link.unlink(missing_ok=True)
        fsutil.remove_tree(tmp)

    def remove(self, chain_id: str) -> None:
        """Delete a layer (missing is fine); callers make sure nothing uses it."""
        final = self._dir(chain_id)
        trash = self.base / _partial_name(".trash-")
        try:
            os.rename(final, trash)
        except FileNotFoundError:
            return
        try:
            short = (trash / "link").read_text().strip()
        except FileNotFoundError:
            short = ""
        if short and "/" not in short:
            (self.links / short).unlink(missing_ok=True)
        fsutil.remove_tree(trash)

    def size(self, chain_id: str) -> int:
        try:
            return int((self._dir(chain_id) / "size").read_text())
        except FileNotFoundError:
            raise NotFound(f"layer {chain_id} not found") from None

    def parent(self, chain_id: str) -> str | None:
        try:
            value = (self._dir(chain_id) / "parent").read_text().strip()
        except FileNotFoundError:
            raise NotFound(f"layer {chain_id} not found") from None
        return value or None

    def _chain(self, chain_id: str) -> list[str]:
        """``chain_id`` and its ancestors, top first."""
        out: list[str] = []
        current: str | None = chain_id
        while current is not None:
            if current in out or len(out) > 1000:
                raise RuntimeFailure(f"layer {chain_id} has a broken parent chain")
            out.append(current)
            current = self.parent(current)
        return out

    def lower_dirs(self, chain_id: str) -> list[Path]:
        """overlay: the real diff dirs of the chain, top first; vfs: [the full tree]."""
        if self.driver == "vfs":
            if not self.exists(chain_id):
                raise NotFound(f"layer {chain_id} not found")
            return [self._content(chain_id)]
        return [self._content(c) for c in self._chain(chain_id)]

    def _short_link(self, chain: str) -> str:
        try:
            short = (self._dir(chain) / "link").read_text().strip()
        except FileNotFoundError:
            raise NotFound(f"layer {chain} not found") from None
        if not short or "/" in short or not (self.links / short).is_symlink():
            raise RuntimeFailure(f"layer {chain} has no short link (run repair)")
        return short

    # ---- containers -----------------------------------------------------------------
    def prepare_container(self, container_id: str, chain_id: str | None) -> Rootfs:
        """Make a container's writable root over layer ``chain_id`` (None: empty).

        overlay: returns what to mount (nothing is mounted here); vfs: a full copy.
        """
        final = self.cdir / _check_container_id(container_id)
        if final.exists():
            raise Conflict(f"storage for container {container_id} already exists")
        lowers: tuple[str, ...] = ()
        if chain_id is not None:
            if not self.exists(chain_id):
                raise NotFound(f"layer {chain_id} not found")
            if self.driver == "overlay":
                lowers = tuple("l/" + self._short_link(c) for c in self._chain(chain_id))
        self.cdir.mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True, exist_ok=True)    # Rootfs.chdir, even with no layers
        tmp = self.cdir / _partial_name(".tmp-")
        try:
            tmp.mkdir(mode=0o700)
            (tmp / "chain").write_text(chain_id or "")
            if self.driver == "overlay":
                (tmp / "upper").mkdir(mode=0o755)
                (tmp / "work").mkdir(mode=0o700)
                (tmp / "merged").mkdir(mode=0o700)
                if chain_id is None:        # overlayfs needs a lower dir: an empty one
                    (tmp / "empty").mkdir(mode=0o755)
            else:
                (tmp / "fs").mkdir(mode=0o755)
                if chain_id is not None:
                    fsutil.copy_tree(self._content(chain_id), tmp / "fs")
            try:
                os.rename(tmp, final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise Conflict(f"storage for container {container_id} already "
                                   "exists") from None
                raise
        except BaseException:
            fsutil.remove_tree(tmp)
            raise
        from sdk.runtime.spec import Rootfs

        if self.driver == "vfs":
            return Rootfs(path=str(final / "fs"))
        if chain_id is None:
            lowers = (os.path.relpath(final / "empty", self.base),)
        return Rootfs(path=str(final / "merged"), lowerdirs=lowers,
                      upperdir=str(final / "upper"), workdir=str(final / "work"),
                      chdir=str(self.base))

    def container_upper(self, container_id: str) -> Path:
        """overlay: the container's upper dir; vfs: its whole tree."""
        name = "upper" if self.driver == "overlay" else "fs"
        return self.cdir / _check_container_id(container_id) / name

    def remove_container(self, container_id: str) -> None:
        """Delete a container's storage (missing is fine).  Refuses while its merged
        dir is mounted in this mount namespace."""
        d = self.cdir / _check_container_id(container_id)
        if not d.exists():
            return
        merged = d / "merged"
        if os.path.ismount(merged):
            raise RuntimeFailure(f"removing container storage {d}: {merged} is still "
                                 "mounted")
        trash = self.cdir / _partial_name(".trash-")
        try:
            os.rename(d, trash)
        except FileNotFoundError:
            return
        try:
            fsutil.remove_tree(trash, strict=True)
        except OSError as exc:
            try:       # back in place, so a later `rm` (the container is "dead") retries
                os.rename(trash, d)
            except OSError:
                pass
            raise RuntimeFailure(f"removing container storage {d}: {exc}") from None

    def container_size(self, container_id: str) -> int:
        """Bytes the container wrote (``docker ps -s``): its upper dir (overlay), or
        what differs from the image's tree (vfs)."""
        d = self.cdir / _check_container_id(container_id)
        if self.driver == "overlay":
            return fsutil.tree_size(d / "upper")
        try:
            chain = (d / "chain").read_text().strip() or None
        except FileNotFoundError:
            return 0
        base = self._content(chain) if chain and self.exists(chain) else None
        return fsutil.changed_size(d / "fs", base)

    # ---- whole store ------------------------------------------------------------------
    def disk_usage(self) -> int:
        """Bytes allocated under the store, shared inodes once, mounts not entered."""
        return fsutil.disk_usage(self.root)

    def cleanup_partial(self) -> int:
        """Crash repair: remove temp/trash dirs of dead processes and dangling short
        links; returns how many things were removed."""
        removed = 0
        for parent in (self.base, self.cdir):
            try:
                entries = list(os.scandir(parent))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith(_PARTIAL) and not _pid_alive(entry.name):
                    fsutil.remove_tree(Path(entry.path))
                    removed += 1
        return removed + self._cleanup_links()

    def _cleanup_links(self) -> int:
        try:
            links = list(os.scandir(self.links))
        except FileNotFoundError:
            return 0
        in_flight: set[str] | None = None
        removed = 0
        for entry in links:
            if os.path.exists(entry.path):
                continue
            if in_flight is None:       # short ids of layers being created right now
                in_flight = set()
                for tmp in self.base.glob(".tmp-*/link"):
                    try:
                        in_flight.add(tmp.read_text().strip())
                    except OSError:
                        pass
            if entry.name in in_flight or os.path.exists(entry.path):
                continue
            try:
                os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
        return removed
