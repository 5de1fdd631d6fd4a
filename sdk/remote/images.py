"""``engine.images`` over the Engine API: docker-py's Image and ImageCollection."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

from sdk.errors import ImageNotFound, InvalidArgument
from sdk.models.images import Image
from sdk.models.resource import Collection
from sdk.remote.errors import RemoteUnsupported, stream_error
from sdk.remote.transport import quote_ref

if TYPE_CHECKING:
    from sdk.remote.engine import RemoteEngine


class RemoteImage(Image):
    engine: RemoteEngine

    def tag(self, repository: str, tag: str | None = None, force: bool = False) -> bool:
        self.engine.api.call("POST", f"/images/{quote_ref(self.id)}/tag",
                             query={"repo": repository, "tag": tag or None},
                             resource="images")
        self.reload()
        return True

    def history(self) -> list[dict[str, Any]]:
        return list(self.engine.api.json("GET", f"/images/{quote_ref(self.id)}/history",
                                         resource="images"))

    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("Image.save")


class RemoteImageCollection(Collection):
    model = RemoteImage
    engine: RemoteEngine

    def get(self, name: str) -> RemoteImage:
        attrs = self.engine.api.json("GET", f"/images/{quote_ref(name)}/json",
                                     resource="images")
        return self.prepare_model(attrs)  # type: ignore[no-any-return]

    def list(self, name: str | None = None, all: bool = False,   # noqa: A002 - docker-py
             filters: dict[str, Any] | None = None) -> list[RemoteImage]:
        query_filters = dict(filters or {})
        if name:      # the embedded list matches ``name`` like a reference filter
            refs = query_filters.get("reference") or []
            refs = [refs] if isinstance(refs, str) else list(refs)
            query_filters["reference"] = [*refs, name]
        rows = self.engine.api.json("GET", "/images/json",
                                    query={"all": all, "filters": query_filters or None},
                                    resource="images")
        out = []
        for row in rows:
            try:
                out.append(self.get(row["Id"]))
            except ImageNotFound:
                continue      # removed between the list and the inspect
        return out

    def pull(self, repository: str, tag: str | None = None, all_tags: bool = False,
             platform: str | None = None, progress: Any = None) -> RemoteImage:
        """docker-py's pull; ``progress(event)`` gets docker's JSON progress messages.
        The daemon pulls with its own credentials (its ``config.json``)."""
        if all_tags:
            raise RemoteUnsupported("images.pull(all_tags=True)")
        resp = self.engine.api.request("POST", "/images/create",
                                       query={"fromImage": repository, "tag": tag or None,
                                              "platform": platform}, resource="images")
        for event in resp.lines():
            if event.get("error"):
                resp.close()
                raise stream_error(str(event["error"]))
            if progress is not None:
                progress(event)
        ref = f"{repository}{'@' if tag and ':' in tag else ':'}{tag}" if tag else repository
        return self.get(ref)

    def import_image(self, src: str | bytes | IO[bytes], repository: str | None = None,
                     tag: str | None = None, changes: list[str] | None = None,
                     message: str = "") -> RemoteImage:
        """``docker import``: a tarball path (read here and sent), a URL (fetched by
        the daemon), bytes or a binary file object."""
        query = {"repo": repository or None, "tag": tag if repository else None,
                 "changes": list(changes or []), "message": message or None}
        data: bytes | None
        if isinstance(src, bytes):
            data = src
        elif isinstance(src, str) and src.startswith(("http://", "https://")):
            data = None
        elif isinstance(src, str | os.PathLike):
            path = os.fspath(src)
            if not os.path.isfile(path):
                raise InvalidArgument(f"open {path}: no such file or directory")
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = src.read()
        query["fromSrc"] = "-" if data is not None else str(src)
        resp = self.engine.api.request("POST", "/images/create", query=query, data=data,
                                       content_type="application/x-tar", resource="images")
        image_id = None
        for event in resp.lines():
            if event.get("error"):
                resp.close()
                raise stream_error(str(event["error"]))
            image_id = event.get("status") or image_id
        if not image_id:
            raise InvalidArgument("the engine service answered the import without an "
                                  "image ID")
        return self.get(str(image_id))

    def remove(self, image: str, force: bool = False,
               noprune: bool = False) -> list[dict[str, str]]:
        return list(self.engine.api.json("DELETE", f"/images/{quote_ref(image)}",
                                         query={"force": force, "noprune": noprune},
                                         resource="images"))

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.engine.api.json("POST", "/images/prune",
                                         query={"filters": filters or None},
                                         resource="images"))

    def load(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("images.load")

    def push(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("images.push")

    def build(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("images.build")

    def prune_builds(self, *args: Any, **kwargs: Any) -> Any:
        raise RemoteUnsupported("images.prune_builds")
