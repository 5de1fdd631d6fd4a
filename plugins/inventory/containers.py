# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
name: containers
short_description: berth containers as inventory hosts
version_added: 0.1.0
description:
  - Adds the containers of a berth engine as hosts, reached with the
    P(berth.engine.berth#connection) connection plugin.
  - Each host gets C(berth_id), C(berth_name), C(berth_image), C(berth_image_id),
    C(berth_status), C(berth_labels) and C(berth_networks), usable in O(compose), O(groups)
    and O(keyed_groups).
  - The configuration file's name must end with C(berth.yml) or C(berth.yaml).
author:
  - berth developers
extends_documentation_fragment:
  - ansible.builtin.constructed
options:
  plugin:
    description: The plugin's name.
    type: str
    required: true
    choices: [berth.engine.containers]
  engine_root:
    description: The engine's data root (default C(/var/lib/berth)).
    type: str
    env:
      - name: BERTH_ROOT
  engine_config:
    description: The engine's daemon.json.
    type: str
    env:
      - name: BERTH_CONFIG
  all:
    description: Add stopped containers too (only running ones otherwise).
    type: bool
    default: false
  filters:
    description: Container filters, as C(berth ps --filter) takes them (C(label), C(name), ...).
    type: dict
    default: {}
"""

EXAMPLES = r"""
# web.berth.yml
plugin: berth.engine.containers
filters:
  label: env=prod
keyed_groups:
  - key: berth_labels.app
    prefix: app
  - key: berth_status
    prefix: status
groups:
  busybox: "'busybox' in berth_image"
"""

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "berth.engine.containers"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("berth.yml", "berth.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            from sdk import Engine
            from sdk.errors import SdkError
        except ImportError:
            raise AnsibleParserError(
                "the berth SDK (Python package 'sdk' of berth-engine) cannot be imported by "
                "the controller's Python; install berth there (the berth.engine.engine role)")
        root = self.get_option("engine_root")
        config = self.get_option("engine_config")
        try:
            with Engine(root=root or None, config=config or None) as engine:
                found = engine.containers.list(all=self.get_option("all"),
                                               filters=self.get_option("filters") or None)
                hosts = [self._host_vars(c.attrs) for c in found]
        except SdkError as exc:
            raise AnsibleParserError(f"berth inventory {path}: {exc}")
        strict = self.get_option("strict")
        for hostvars in hosts:
            name = hostvars["berth_name"]
            self.inventory.add_host(name)
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
            self.inventory.set_variable(name, "ansible_connection", "berth.engine.berth")
            self.inventory.set_variable(name, "ansible_host", hostvars["berth_id"])
            if root:
                self.inventory.set_variable(name, "ansible_berth_root", root)
            if config:
                self.inventory.set_variable(name, "ansible_berth_config", config)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name,
                                              strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name,
                                           strict=strict)

    @staticmethod
    def _host_vars(attrs):
        config = attrs.get("Config") or {}
        networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        return {
            "berth_id": attrs["Id"], "berth_name": attrs["Name"].lstrip("/"),
            "berth_image": config.get("Image") or "", "berth_image_id": attrs.get("Image"),
            "berth_status": (attrs.get("State") or {}).get("Status"),
            "berth_labels": dict(config.get("Labels") or {}),
            "berth_networks": sorted(networks),
        }
