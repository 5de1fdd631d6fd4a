"""Store a layer tar that a build step writes: as a blob, and unpacked.

The tar goes straight into the content store (hashed as it is written), never into a
temp file that would be read, hashed and copied again.  With overlay, where a layer
can be unpacked before it is known where it goes (``LayerStore.stage``), a second
thread unpacks it from a pipe while the step is still writing it: for a COPY of a big
file or of many files the writing and the unpacking overlap instead of running one
after the other.  vfs unpacks from the stored blob afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from sdk.images.service import ImageService, LayerRecord
    from sdk.snapshots.layers import StagedLayer

_PIPE_SIZE = 1 << 20
WriteLayer = Callable[[Any], int]     # writes a tar into the file object, returns entries


class _Tee:
    """A write-only file object feeding the blob writer and the unpacking pipe."""

    def __init__(self, blob: Any, pipe: BinaryIO) -> None:
        self.blob = blob
        self.pipe = pipe

    def write(self, data: bytes) -> int:
        self.blob.write(data)
        self.pipe.write(data)
        return len(data)


def store_layer(store: ImageService, write: WriteLayer,
                parent: LayerRecord | None) -> LayerRecord | None:
    """Run ``write`` into a new layer on top of ``parent``; None when it wrote nothing."""
    from sdk.images.service import OCI_LAYER_TAR

    layers = store.layers
    with store.content.writer() as blob:        # aborted unless committed
        staged: StagedLayer | None = None
        if layers.stages_independently:
            count, staged = _write_and_unpack(layers, write, blob)
        else:
            count = write(blob)
        if not count:
            return None
        try:
            digest, _size = blob.commit()
        except BaseException:
            if staged is not None:
                layers.discard(staged)
            raise
    return store.add_blob_layer(digest, OCI_LAYER_TAR, digest, parent, staged=staged)


def _widen(fd: int) -> None:
    """A 1 MB pipe instead of 64 KB: the writer and the unpacker (two Python threads
    sharing the GIL) then hand over 16 times less often."""
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
    except OSError:         # over /proc/sys/fs/pipe-max-size for an unprivileged user
        pass


def _write_and_unpack(layers: Any, write: WriteLayer,
                      blob: Any) -> tuple[int, StagedLayer | None]:
    """``write`` in a thread into the blob and a pipe; this thread unpacks the pipe.
    The writer's error wins over the unpacker's (which then only saw a cut tar)."""
    rfd, wfd = os.pipe()
    _widen(wfd)
    outcome: dict[str, Any] = {}

    def produce() -> None:
        try:
            pipe = os.fdopen(wfd, "wb", buffering=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            os.close(wfd)
            outcome["error"] = exc
            return
        try:
            with pipe:
                outcome["count"] = write(_Tee(blob, pipe))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=produce, name="build-layer-writer", daemon=True)
    thread.start()
    staged: StagedLayer | None = None
    unpack_error: BaseException | None = None
    try:
        with os.fdopen(rfd, "rb", buffering=1 << 20) as pipe_in:
            try:
                staged = layers.stage(pipe_in)
            except BaseException as exc:  # noqa: BLE001 - raised below
                unpack_error = exc
            while pipe_in.read(1 << 20):    # the tar's padding, or all of it when
                pass                        # unpacking failed: never block the writer
    finally:
        thread.join()
    error = outcome.get("error") or unpack_error
    count = int(outcome.get("count") or 0)
    if (error is not None or not count) and staged is not None:
        layers.discard(staged)
        staged = None
    if error is not None:
        raise error
    return count, staged
