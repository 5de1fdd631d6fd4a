#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_info
short_description: Facts about the berth engine, optionally with its containers, images and volumes
version_added: 0.1.0
description:
  - Returns the engine's C(info) (version, storage driver, cgroup version, counts of
    containers and images, registries) and C(version).
  - Optionally lists containers, images and volumes, with the same filters as
    C(berth ps), C(berth images) and C(berth volume ls).
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
  - berth.engine.attributes.info_module
options:
  containers:
    description: List containers.
    type: bool
    default: false
  containers_all:
    description: List stopped containers too (only running ones otherwise).
    type: bool
    default: false
  containers_filters:
    description:
      - 'Filters like C(berth ps --filter), for example C({"label": "app=web", "status": "exited"}).'
      - A value may be a list to give one filter several values.
    type: dict
  images:
    description: List images.
    type: bool
    default: false
  images_filters:
    description: Filters like C(berth images --filter) (C(dangling), C(label), C(reference), ...).
    type: dict
  volumes:
    description: List volumes.
    type: bool
    default: false
  volumes_filters:
    description: Filters like C(berth volume ls --filter) (C(name), C(label), C(dangling), C(driver)).
    type: dict
  verbose_output:
    description:
      - Return full inspect documents in the lists instead of short summaries.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Engine facts
  berth.engine.engine_info:
  register: berth

- name: Which cgroup version and storage driver
  ansible.builtin.debug:
    msg: "cgroup v{{ berth.engine.CgroupVersion }}, {{ berth.engine.Driver }}"

- name: Exited containers of one app
  berth.engine.engine_info:
    containers: true
    containers_filters:
      status: exited
      label: app=web
  register: exited
"""

RETURN = r"""
engine:
  description: The engine's info document (as C(berth info --format json)).
  returned: always
  type: dict
  sample: {"ServerVersion": "0.1.0", "Driver": "overlay", "CgroupVersion": "2",
           "Containers": 3, "ContainersRunning": 1, "Images": 2}
version:
  description: The engine's version document.
  returned: always
  type: dict
  sample: {"Version": "0.1.0", "ApiVersion": "1.43", "Os": "linux", "Arch": "amd64"}
containers:
  description: Containers (summaries with Id, Names, Image, ImageID, Command, State, Status,
    Labels; inspect documents with O(verbose_output)).
  returned: When O(containers=true)
  type: list
  elements: dict
images:
  description: Images (summaries with Id, RepoTags, Created, Size, Labels; inspect documents
    with O(verbose_output)).
  returned: When O(images=true)
  type: list
  elements: dict
volumes:
  description: Volumes (their inspect documents).
  returned: When O(volumes=true)
  type: list
  elements: dict
"""

from ansible_collections.berth.engine.plugins.module_utils.common import EngineModule


def container_summary(attrs):
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    return {"Id": attrs["Id"], "Names": [attrs["Name"].lstrip("/")],
            "Image": config.get("Image"), "ImageID": attrs.get("Image"),
            "Command": " ".join([attrs.get("Path") or ""] + list(attrs.get("Args") or [])),
            "Created": attrs.get("Created"), "State": state.get("Status"),
            "ExitCode": state.get("ExitCode"), "Labels": config.get("Labels") or {}}


def image_summary(attrs):
    return {"Id": attrs["Id"], "RepoTags": attrs.get("RepoTags") or [],
            "Created": attrs.get("Created"), "Size": attrs.get("Size"),
            "Labels": (attrs.get("Config") or {}).get("Labels") or {}}


def main():
    m = EngineModule({
        "containers": {"type": "bool", "default": False},
        "containers_all": {"type": "bool", "default": False},
        "containers_filters": {"type": "dict"},
        "images": {"type": "bool", "default": False},
        "images_filters": {"type": "dict"},
        "volumes": {"type": "bool", "default": False},
        "volumes_filters": {"type": "dict"},
        "verbose_output": {"type": "bool", "default": False},
    }, supports_check_mode=True)

    def body():
        p = m.params
        engine = m.engine
        result = {"changed": False, "engine": engine.info(), "version": engine.version()}
        verbose = p["verbose_output"]
        if p["containers"]:
            found = engine.containers.list(all=p["containers_all"],
                                           filters=p["containers_filters"])
            result["containers"] = [c.attrs if verbose else container_summary(c.attrs)
                                    for c in found]
        if p["images"]:
            found = engine.images.list(filters=p["images_filters"])
            result["images"] = [i.attrs if verbose else image_summary(i.attrs) for i in found]
        if p["volumes"]:
            result["volumes"] = [v.attrs for v in engine.volumes.list(
                filters=p["volumes_filters"])]
        return result

    m.run(body)


if __name__ == "__main__":
    main()
