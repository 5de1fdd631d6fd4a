#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Manage berth images (pull, build, load, import, push, save, remove)
version_added: 0.1.0
description:
  - Makes an image exist under O(name) from a source, optionally pushes it and saves it to an
    archive; or removes it.
  - Builds run only when the build context changed (the Dockerfile, every file of the
    context, build args, target and labels are hashed into the label
    C(io.berth.ansible.context)), and report a change only when the image ID changes.
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
attributes:
  check_mode:
    support: partial
    details:
      - Pulls ask the registry without downloading anything (a C(HEAD) of the manifest,
        and the manifest itself when its digest is not the local image's). With
        O(force_source=true) a pull is predicted as a change only when it would give the
        name another image ID; a tag missing from the registry fails as the pull would.
      - Builds are predicted from the context hash; a push, a load and an import with
        O(force_source=true) are predicted as changes.
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - O(force_source=true) pulls and loads again (a change only when the ID moves);
        O(push=true) reports a change only when a layer or manifest was uploaded.
options:
  name:
    description:
      - Image reference, like C(busybox), C(busybox:1.36) or C(registry.local:5000/app:1).
        Without a tag, C(latest).
    type: str
    required: true
  state:
    description: V(present) makes the image exist, V(absent) removes the reference.
    type: str
    choices: [present, absent]
    default: present
  source:
    description:
      - Where the image comes from when it is missing (or with O(force_source)).
      - V(local) only checks that it exists; V(pull) pulls it; V(build) builds O(build);
        V(load) loads O(load_path) (a C(berth save) or C(docker save) archive);
        V(import) creates it from the root filesystem tarball O(import_path).
      - Required with O(state=present).
    type: str
    choices: [local, pull, build, load, import]
  force_source:
    description: Pull, load or import again even when the image exists.
    type: bool
    default: false
  force_absent:
    description: With O(state=absent), remove the image even when containers use it.
    type: bool
    default: false
  build:
    description: Build parameters for O(source=build).
    type: dict
    suboptions:
      path:
        description: Build context directory on the managed host.
        type: path
        required: true
      dockerfile:
        description: Dockerfile, relative to O(build.path).
        type: str
      args:
        description: Build arguments.
        type: dict
      target:
        description: Stage to build.
        type: str
      labels:
        description: Labels added to the image.
        type: dict
      nocache:
        description: Do not use the build cache.
        type: bool
        default: false
  load_path:
    description: Archive to load for O(source=load).
    type: path
  import_path:
    description: Root filesystem tarball for O(source=import).
    type: path
  import_changes:
    description: Dockerfile instructions applied on import, like C(CMD ["sh"]).
    type: list
    elements: str
  push:
    description: Push the image to its registry after making it present.
    type: bool
    default: false
  archive_path:
    description:
      - Save the image to this archive (C(berth save) format); rewritten only when it does
        not already hold this image.
    type: path
"""

EXAMPLES = r"""
- name: Build the app image when its context changes
  berth.engine.image:
    name: registry.local:5000/app:1
    source: build
    build:
      path: /srv/app
      args:
        VERSION: "1"
    push: true

- name: Make sure busybox is there, pulling it once
  berth.engine.image:
    name: busybox:1.36
    source: pull

- name: Import a root filesystem
  berth.engine.image:
    name: base:1
    source: import
    import_path: /srv/rootfs.tar
    import_changes:
      - CMD ["sh"]

- name: Keep an archive of it
  berth.engine.image:
    name: base:1
    source: local
    archive_path: /srv/base-1.tar

- name: Remove it
  berth.engine.image:
    name: base:1
    state: absent
"""

RETURN = r"""
image:
  description: The image's inspect document after the task (empty when absent).
  returned: always
  type: dict
  sample: {"Id": "sha256:53e8...", "RepoTags": ["busybox:latest"]}
registry_digest:
  description: The manifest digest the registry has for O(name) (what a pull would record
    in RepoDigests).
  returned: in check mode, when the task would pull
  type: str
  sample: sha256:6d9ac9237a84afe1516540f40a0fafdc86859b2141954b4d643af7066d598b74
actions:
  description: What the task did (would do, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["built image app:1 (context changed)"]
"""

import hashlib
import json
import os
import tarfile

from ansible_collections.berth.engine.plugins.module_utils.common import (
    EngineModule,
    require_method,
)

CONTEXT_LABEL = "io.berth.ansible.context"


def context_digest(build):
    """sha256 over the context's files (path, mode, content) and the build parameters."""
    h = hashlib.sha256()
    root = build["path"]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            h.update(f"{rel}\0{st.st_mode:o}\0".encode())
            if os.path.islink(full):
                h.update(os.readlink(full).encode())
            else:
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
    params = {k: build.get(k) for k in ("dockerfile", "args", "target", "labels")}
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return "sha256:" + h.hexdigest()


def archive_image_id(path):
    """The config digest of the image in a save archive (None if unreadable)."""
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member else None
    except (OSError, tarfile.TarError, KeyError, ValueError):
        return None
    if not manifest:
        return None
    config = manifest[0].get("Config", "")
    return "sha256:" + os.path.basename(config).replace(".json", "")


class ImageManager:
    def __init__(self, m):
        self.m = m
        self.p = m.params
        self.images = m.engine.images
        self.name = self.p["name"]
        self.result = {"changed": False, "image": {}}

    def find(self):
        from sdk.errors import NotFound

        try:
            return self.images.get(self.name)
        except NotFound:
            return None

    def changed_to(self, before, after_id, what):
        if before is None or before.id != after_id:
            self.result["changed"] = True
            self.m.actions.append(what)

    def run(self):
        from sdk.errors import InvalidArgument

        p = self.p
        existing = self.find()
        if p["state"] == "absent":
            if existing is not None:
                self.m.act(f"remove image {self.name}", lambda: self.images.remove(
                    self.name, force=p["force_absent"]))
                self.result["changed"] = True
            return self.result
        source = p["source"]
        if source is None:
            raise InvalidArgument("source is required with state=present (local, pull, "
                                  "build, load or import)")
        if source == "build" and not p["build"]:
            raise InvalidArgument("source=build needs build.path")
        if source == "load" and not p["load_path"]:
            raise InvalidArgument("source=load needs load_path")
        if source == "import" and not p["import_path"]:
            raise InvalidArgument("source=import needs import_path")
        before_id = existing.id if existing is not None else None
        current = getattr(self, f"source_{source}")(existing)
        if current is not None and p["push"]:
            self.push()
        if current is not None and p["archive_path"]:
            self.archive(current)
        if current is not None and not self.m.check_mode:
            current = self.find()
        self.result["image"] = current.attrs if current is not None else {}
        if self.m.module._diff:
            self.result["diff"] = {"before": {"id": before_id},
                                   "after": {"id": current.id if current is not None
                                             else "(to be made)"}}
        if self.m.actions:
            self.result["changed"] = True
        return self.result

    # ---- sources ------------------------------------------------------------------------
    def source_local(self, existing):
        from sdk.errors import ImageNotFound

        if existing is None:
            raise ImageNotFound(f"image {self.name} is not on the engine (source=local)")
        return existing

    def source_pull(self, existing):
        if existing is not None and not self.p["force_source"]:
            return existing
        pull = require_method(self.images, "pull", "pulling images")
        if self.m.check_mode:
            # ask the registry: a pull that would not move the ID is no change
            from ansible_collections.berth.engine.plugins.module_utils.registry_digest import (
                predict_pull,
            )

            prediction = predict_pull(self.m.engine, self.name,
                                      existing.id if existing is not None else None)
            self.result["registry_digest"] = prediction.digest
            if prediction.changes:
                self.m.actions.append(f"pull image {self.name}")
            return existing
        repository, tag = split_tag(self.name)
        image = pull(repository, tag=tag)
        self.changed_to(existing, image.id, f"pulled image {self.name}")
        return image

    def source_import(self, existing):
        if existing is not None and not self.p["force_source"]:
            return existing
        if self.m.check_mode:
            self.m.actions.append(f"import image {self.name}")
            return existing
        repository, tag = split_tag(self.name)
        image = self.images.import_image(self.p["import_path"], repository=repository,
                                         tag=tag, changes=self.p["import_changes"])
        self.changed_to(existing, image.id, f"imported image {self.name}")
        return image

    def source_load(self, existing):
        from sdk.errors import NotFound

        if existing is not None and not self.p["force_source"]:
            return existing
        load = require_method(self.images, "load", "loading image archives")
        if self.m.check_mode:
            self.m.actions.append(f"load {self.p['load_path']}")
            return existing
        with open(self.p["load_path"], "rb") as f:
            load(f)
        image = self.find()
        if image is None:
            raise NotFound(f"{self.p['load_path']} was loaded but holds no image named "
                           f"{self.name}")
        self.changed_to(existing, image.id, f"loaded image {self.name}")
        return image

    def source_build(self, existing):
        build = self.p["build"]
        digest = context_digest(build)
        if existing is not None and existing.labels.get(CONTEXT_LABEL) == digest and \
                not self.p["force_source"]:
            return existing
        method = require_method(self.images, "build", "building images")
        if self.m.check_mode:
            self.m.actions.append(f"build image {self.name}")
            return existing
        labels = dict(build.get("labels") or {})
        labels[CONTEXT_LABEL] = digest
        image, _log = method(path=build["path"], dockerfile=build.get("dockerfile"),
                             tag=self.name, buildargs={k: str(v) for k, v in
                                                       (build.get("args") or {}).items()},
                             target=build.get("target"), labels=labels,
                             nocache=build.get("nocache", False))
        self.changed_to(existing, image.id, f"built image {self.name}")
        return image

    # ---- after ------------------------------------------------------------------------------
    def push(self):
        push = require_method(self.images, "push", "pushing images")
        if self.m.check_mode:
            self.m.actions.append(f"push image {self.name}")
            return
        repository, tag = split_tag(self.name)
        events = [json.loads(line) for line in push(repository, tag=tag).splitlines()
                  if line.strip()]
        uploaded = any(e.get("status") in ("Pushed", "Pushing") or
                       str(e.get("status", "")).startswith("Mounted from") for e in events)
        if uploaded:
            self.m.actions.append(f"pushed image {self.name}")

    def archive(self, image):
        path = self.p["archive_path"]
        if os.path.exists(path) and archive_image_id(path) == image.id:
            return
        save = require_method(image, "save", "saving images")

        def write():
            from ansible_collections.berth.engine.plugins.module_utils.common import (
                atomic_write,
            )

            atomic_write(path, b"".join(save(named=self.name if self.name in image.tags
                                             else True)))
        self.m.act(f"save image {self.name} to {path}", write)


def split_tag(ref):
    """(repository, tag) with docker's rules: a tag is after the last ':' of the last part."""
    last = ref.rsplit("/", 1)[-1]
    if "@" in ref:
        name, _, digest = ref.partition("@")
        return name, digest
    if ":" in last:
        name, _, tag = ref.rpartition(":")
        return name, tag
    return ref, "latest"


def main():
    m = EngineModule({
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "source": {"type": "str", "choices": ["local", "pull", "build", "load", "import"]},
        "force_source": {"type": "bool", "default": False},
        "force_absent": {"type": "bool", "default": False},
        "build": {"type": "dict", "options": {
            "path": {"type": "path", "required": True},
            "dockerfile": {"type": "str"},
            "args": {"type": "dict"},
            "target": {"type": "str"},
            "labels": {"type": "dict"},
            "nocache": {"type": "bool", "default": False},
        }},
        "load_path": {"type": "path"},
        "import_path": {"type": "path"},
        "import_changes": {"type": "list", "elements": "str"},
        "push": {"type": "bool", "default": False},
        "archive_path": {"type": "path"},
    }, supports_check_mode=True)
    m.run(lambda: ImageManager(m).run())


if __name__ == "__main__":
    main()
