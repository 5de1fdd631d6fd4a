#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Manage berth volumes
version_added: 0.1.0
description:
  - Creates, re-creates and removes named volumes of the berth engine.
  - An existing volume whose driver, options or labels differ is re-created only when
    O(recreate) says so; otherwise the task warns and leaves it.
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: partial
    details: Not idempotent with O(recreate=always).
options:
  name:
    description:
      - Name of the volume.
    type: str
    required: true
    aliases: [volume_name]
  driver:
    description:
      - Volume driver. The engine has C(local).
    type: str
    default: local
  driver_options:
    description:
      - Driver options, like C(type=tmpfs), C(o=size=64m), or C(type=none), C(o=bind),
        C(device=/srv/data).
      - Compared strictly with the existing volume's options.
    type: dict
    default: {}
    aliases: [driver_opts]
  labels:
    description:
      - Labels of the volume. Labels the volume has beyond these are not a difference.
    type: dict
  recreate:
    description:
      - V(never) leaves an existing volume alone even when it differs (with a warning).
      - V(options-changed) re-creates it when driver, options or labels differ.
      - V(always) re-creates it on every run.
      - Re-creating removes the volume's data and fails while a container uses it.
    type: str
    choices: [never, always, options-changed]
    default: never
  state:
    description:
      - V(present) creates the volume, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: A volume for the database
  berth.engine.volume:
    name: pgdata
    labels:
      app: db

- name: A tmpfs volume, re-created when its options change
  berth.engine.volume:
    name: scratch
    driver_options:
      type: tmpfs
      device: tmpfs
      o: size=64m
    recreate: options-changed

- name: Remove it
  berth.engine.volume:
    name: scratch
    state: absent
"""

RETURN = r"""
volume:
  description: The volume's inspect document (empty after removal).
  returned: always
  type: dict
  sample: {"Name": "pgdata", "Driver": "local", "Labels": {"app": "db"}, "Options": null,
           "Mountpoint": "/var/lib/berth/volumes/pgdata/_data", "Scope": "local"}
differences:
  description: Options that differ from the existing volume, each with expected and actual.
  returned: always
  type: list
  elements: dict
  sample: [{"option": "labels.app", "expected": "db", "actual": "web"}]
actions:
  description: What the task did (would do, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create volume pgdata"]
"""

from ansible_collections.berth.engine.plugins.module_utils.common import EngineModule
from ansible_collections.berth.engine.plugins.module_utils.compare import (
    diff_result,
    differences,
    explain,
)


def _strings(values):
    return {str(k): str(v) for k, v in (values or {}).items()}


def volume_differences(params, attrs):
    out = differences("driver", params["driver"], attrs.get("Driver"), "value", "strict")
    out += differences("driver_options", _strings(params["driver_options"]),
                       attrs.get("Options") or {}, "dict", "strict")
    if params["labels"] is not None:
        out += differences("labels", _strings(params["labels"]), attrs.get("Labels") or {},
                           "dict", "allow_more_present")
    return out


def main():
    m = EngineModule({
        "name": {"type": "str", "required": True, "aliases": ["volume_name"]},
        "driver": {"type": "str", "default": "local"},
        "driver_options": {"type": "dict", "default": {}, "aliases": ["driver_opts"]},
        "labels": {"type": "dict"},
        "recreate": {"type": "str", "default": "never",
                     "choices": ["never", "always", "options-changed"]},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    }, supports_check_mode=True)

    def body():
        from sdk.errors import NotFound

        p = m.params
        volumes = m.engine.volumes
        name = p["name"]
        try:
            existing = volumes.get(name)
        except NotFound:
            existing = None
        result = {"changed": False, "volume": existing.attrs if existing else {},
                  "differences": []}
        before = existing.attrs if existing else {}

        def create():
            return volumes.create(name=name, driver=p["driver"],
                                  driver_opts=_strings(p["driver_options"]),
                                  labels=_strings(p["labels"]))

        if p["state"] == "absent":
            if existing:
                m.act(f"remove volume {name}", existing.remove)
                result.update(changed=True, volume={}, msg=f"removed volume {name}")
            if m.module._diff:
                result["diff"] = {"before": before, "after": {}}
            return result

        diffs = volume_differences(p, existing.attrs) if existing else []
        result["differences"] = [{"option": d.option, "expected": d.expected,
                                  "actual": d.actual} for d in diffs]
        recreate = existing is not None and (
            p["recreate"] == "always" or (diffs and p["recreate"] == "options-changed"))
        if existing is None:
            created = m.act(f"create volume {name}", create)
            result.update(changed=True, msg=f"created volume {name}")
        elif recreate:
            why = explain(diffs) if diffs else "recreate=always"
            m.act(f"remove volume {name}", existing.remove)
            created = m.act(f"create volume {name}", create)
            result.update(changed=True, msg=f"re-created volume {name}: {why}")
        else:
            created = None
            if diffs:
                m.module.warn(f"volume {name} differs from the task ({explain(diffs)}) but "
                              "recreate=never leaves it; use recreate: options-changed")
        if created is not None:
            result["volume"] = created.attrs
        if m.module._diff:
            result["diff"] = diff_result(diffs) if existing else {"before": {},
                                                                   "after": {"Name": name}}
        return result

    m.run(body)


if __name__ == "__main__":
    main()
