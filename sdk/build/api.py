"""Entry points for ``build`` (CLI and ``engine.images.build``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from sdk.build.builder import Builder, BuildOptions
from sdk.build.context import (
    BuildContext,
    from_directory,
    from_stream,
    from_url,
    is_git_url,
    is_url,
)

if TYPE_CHECKING:
    from sdk.engine import Engine


def open_context(path: str | None = None, fileobj: IO[bytes] | None = None,
                 dockerfile: str | None = None,
                 dockerfile_text: str | None = None) -> BuildContext:
    if fileobj is not None:
        return from_stream(fileobj, dockerfile, dockerfile_text)
    if path is None:
        from sdk.errors import InvalidArgument

        raise InvalidArgument("either path or fileobj needs to be provided")
    if is_url(path) or is_git_url(path):
        return from_url(path, dockerfile, dockerfile_text)
    return from_directory(path, dockerfile, dockerfile_text)


def run_build(engine: Engine, ctx: BuildContext, opts: BuildOptions,
              emit: Callable[[str], None], run_fd: int | None = None) -> str:
    """Build and tag; returns the image ID.  Nothing is tagged when a step fails."""
    from sdk.images.service import familiar, normalize_tag

    full_tags = [normalize_tag(t) for t in opts.tags]     # bad names fail before any work
    image_id = Builder(engine, ctx, opts, emit, run_fd).build()
    emit(f"Successfully built {image_id[7:19]}\n")
    for tag in full_tags:
        engine.image_store.tag(image_id, tag)
        emit(f"Successfully tagged {familiar(tag)}\n")
    return image_id
