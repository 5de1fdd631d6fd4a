"""``engine.images``: docker-py's Image and ImageCollection."""

from __future__ import annotations

import os
from typing import IO, Any

from sdk.errors import InvalidArgument
from sdk.models.filters import labels_match, normalize
from sdk.models.resource import Collection, Model

IMAGE_FILTERS = frozenset({"dangling", "label", "reference", "before", "since"})


class Image(Model):
    @property
    def tags(self) -> list[str]:
        return [t for t in self.attrs.get("RepoTags") or [] if t != "<none>:<none>"]

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})

    def tag(self, repository: str, tag: str | None = None, force: bool = False) -> bool:
        target = f"{repository}:{tag}" if tag else repository
        self.engine.image_store.tag(self.id, target)
        self.reload()
        return True

    def history(self) -> list[dict[str, Any]]:
        from sdk.images.history import history

        return history(self.engine, self.id)


class ImageCollection(Collection):
    model = Image

    def get(self, name: str) -> Image:
        store = self.engine.image_store
        return self.prepare_model(store.inspect(store.resolve(name)))

    def list(self, name: str | None = None, all: bool = False,   # noqa: A002 - docker-py
             filters: dict[str, Any] | None = None) -> list[Image]:
        f = normalize(filters, IMAGE_FILTERS)
        store = self.engine.image_store
        rows = store.summaries()
        out = []
        ref_patterns = list(f.get("reference", [])) + ([name] if name else [])
        before = store.resolve(f["before"][0]) if "before" in f else None
        since = store.resolve(f["since"][0]) if "since" in f else None
        added = {r["Id"]: r["Added"] for r in rows}
        for row in rows:
            if "dangling" in f:
                dangling = not row["RepoTags"]
                if (f["dangling"][0].lower() in ("true", "1")) != dangling:
                    continue
            if before and added[row["Id"]] >= added[before]:
                continue
            if since and added[row["Id"]] <= added[since]:
                continue
            if ref_patterns and not any(_ref_match(t, p) for t in row["RepoTags"]
                                        for p in ref_patterns):
                continue
            attrs = store.inspect(row["Id"])
            if "label" in f and not labels_match(attrs["Config"].get("Labels"), f["label"]):
                continue
            out.append(self.prepare_model(attrs))
        return out

    def import_image(self, src: str | bytes | IO[bytes], repository: str | None = None,
                     tag: str | None = None, changes: list[str] | None = None,
                     message: str = "") -> Image:
        """``docker import``: a tarball path, URL, bytes or a binary file object."""
        import io

        target = None
        if repository:
            target = f"{repository}:{tag}" if tag else repository
        store = self.engine.image_store
        if isinstance(src, bytes):
            image_id = store.import_tar(io.BytesIO(src), tag=target, changes=changes,
                                        message=message, source="-")
        elif isinstance(src, str) and src.startswith(("http://", "https://")):
            from sdk.images.fetch import open_url

            with open_url(src) as stream:
                image_id = store.import_tar(stream, tag=target, changes=changes,
                                            message=message, source=src)
        elif isinstance(src, str | os.PathLike):
            path = os.fspath(src)
            if not os.path.isfile(path):
                raise InvalidArgument(f"open {path}: no such file or directory")
            with open(path, "rb") as stream:
                image_id = store.import_tar(stream, tag=target, changes=changes,
                                            message=message, source=path)
        else:
            image_id = store.import_tar(src, tag=target, changes=changes, message=message,
                                        source="-")
        return self.prepare_model(store.inspect(image_id))

    def remove(self, image: str, force: bool = False,
               noprune: bool = False) -> list[dict[str, str]]:
        return self.engine.image_store.remove(
            image, force=force, prune=not noprune,
            containers_using=self.engine.container_store.names_using_image)

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        f = normalize(filters, frozenset({"dangling", "label", "until"}))
        only_dangling = f.get("dangling", ["true"])[0].lower() in ("true", "1")
        store = self.engine.image_store
        deleted: list[dict[str, str]] = []
        space = 0
        for row in store.summaries():
            if row["Containers"]:
                continue
            if only_dangling and row["RepoTags"]:
                continue
            if "label" in f and not labels_match(store.inspect(row["Id"])["Config"].get(
                    "Labels"), f["label"]):
                continue
            space += row["Size"]
            deleted += store.remove(row["Id"], force=True)
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": space}


def _ref_match(tag: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    if ":" not in pattern.rsplit("/", 1)[-1]:
        return fnmatchcase(tag.rsplit(":", 1)[0], pattern)
    return fnmatchcase(tag, pattern)
