"""``engine.images``: docker-py's Image and ImageCollection."""

from __future__ import annotations

import os
from collections.abc import Iterator
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

    def save(self, chunk_size: int = 2 * 1024 * 1024,
             named: str | bool = False) -> Iterator[bytes]:
        """``docker save`` of this image as chunks; ``named`` includes a tag (the first,
        or the one given) so that loading restores it."""
        from sdk.archive.save import save

        name = self.id
        if named:
            name = self.tags[0] if self.tags else self.id
            if isinstance(named, str):
                if named not in self.tags:
                    raise InvalidArgument(f"{named} is not a valid tag for this image")
                name = named
        return save(self.engine.image_store, [name], chunk_size)


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
        parents = {r["ParentId"] for r in rows if r["ParentId"]}
        for row in rows:
            if not all and not row["RepoTags"] and row["Id"] in parents:
                continue        # docker hides intermediate (build step) images without -a
            if "dangling" in f:
                dangling = not row["RepoTags"] and row["Id"] not in parents
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

    def load(self, data: bytes | IO[bytes]) -> list[Image]:
        """``docker load``: a docker save / OCI archive as bytes or a binary file."""
        import io

        from sdk.archive.load import load

        stream = io.BytesIO(data) if isinstance(data, bytes) else data
        store = self.engine.image_store
        return [self.prepare_model(store.inspect(img.id))
                for img in load(store, stream)]  # type: ignore[arg-type]

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

    def pull(self, repository: str, tag: str | None = None, all_tags: bool = False,
             platform: str | None = None, progress: Any = None) -> Image | list[Image]:
        """docker-py's pull; ``progress(event)`` gets docker's JSON progress messages."""
        from sdk.distribution.pull import pull_image

        ref = f"{repository}{'@' if tag and ':' in tag else ':'}{tag}" if tag else repository
        ids = pull_image(self.engine.image_store, ref, platform=platform,
                         all_tags=all_tags, progress=progress)
        images = [self.prepare_model(self.engine.image_store.inspect(i)) for i in ids]
        return images if all_tags else images[0]

    def push(self, repository: str, tag: str | None = None, all_tags: bool = False,
             progress: Any = None) -> str:
        """docker-py's push: returns the progress messages as JSON lines."""
        import json

        from sdk.distribution.push import push_image

        events: list[dict[str, Any]] = []

        def collect(event: dict[str, Any]) -> None:
            events.append(event)
            if progress is not None:
                progress(event)

        push_image(self.engine.image_store, f"{repository}:{tag}" if tag else repository,
                   all_tags=all_tags, progress=collect)
        return "".join(json.dumps(e) + "\n" for e in events)

    def build(self, path: str | None = None, fileobj: IO[bytes] | None = None,
              tag: str | None = None, buildargs: dict[str, str] | None = None,
              nocache: bool = False, target: str | None = None, rm: bool = True,
              forcerm: bool = False, labels: dict[str, str] | None = None,
              dockerfile: str | None = None, pull: bool = False, quiet: bool = False,
              network_mode: str | None = None, **_ignored: Any
              ) -> tuple[Image, Iterator[dict[str, str]]]:
        """docker-py's ``images.build``: (image, log of ``{"stream": ...}`` chunks)."""
        from sdk.build.api import open_context, run_build
        from sdk.build.builder import BuildOptions

        log: list[dict[str, str]] = []
        opts = BuildOptions(tags=[tag] if tag else [], buildargs=dict(buildargs or {}),
                            nocache=nocache, target=target or "", labels=dict(labels or {}),
                            quiet=quiet, rm=rm, force_rm=forcerm, pull=pull,
                            network_mode=network_mode)
        with open_context(path=path, fileobj=fileobj, dockerfile=dockerfile) as ctx:
            image_id = run_build(self.engine, ctx, opts, lambda t: log.append({"stream": t}))
        log.append({"aux": {"ID": image_id}})  # type: ignore[dict-item]
        return self.get(image_id), iter(log)

    def prune_builds(self, filters: dict[str, Any] | None = None,
                     keep_storage: int | None = None, all: bool | None = None  # noqa: A002
                     ) -> dict[str, Any]:
        """docker-py's ``images.prune_builds``: the build cache (sdk/build/prune.py)."""
        from sdk.build.prune import parse_prune_filters, prune_build_cache

        if keep_storage:
            from sdk.errors import InvalidArgument

            raise InvalidArgument("keep_storage is not supported by berth's builder")
        return prune_build_cache(self.engine, all_cache=bool(all),
                                 until=parse_prune_filters(filters)).as_api()

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
        rows = store.summaries()
        by_id = {r["Id"]: r for r in rows}
        # docker's dangling: untagged and no image builds on it (build steps stay)
        children: dict[str, int] = {}
        for r in rows:
            if r["ParentId"]:
                children[r["ParentId"]] = children.get(r["ParentId"], 0) + 1
        gone: set[str] = set()
        for row in rows:
            if row["Id"] in gone or row["Containers"]:
                continue
            if only_dangling and (row["RepoTags"] or children.get(row["Id"])):
                continue
            if "label" in f and not labels_match(store.inspect(row["Id"])["Config"].get(
                    "Labels"), f["label"]):
                continue
            space += row["Size"]
            deleted += store.remove(row["Id"], force=True)
            gone.add(row["Id"])
            # as docker's delete with prune: the untagged parents left without a child
            # (a build's step images) go too, up to a tagged or shared one
            parent = row["ParentId"]
            while parent in by_id and parent not in gone:
                children[parent] -= 1
                up = by_id[parent]
                if children[parent] or up["RepoTags"] or up["Containers"]:
                    break
                space += up["Size"]
                deleted += store.remove(parent, force=True)
                gone.add(parent)
                parent = up["ParentId"]
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": space}


def _ref_match(tag: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    if ":" not in pattern.rsplit("/", 1)[-1]:
        return fnmatchcase(tag.rsplit(":", 1)[0], pattern)
    return fnmatchcase(tag, pattern)
