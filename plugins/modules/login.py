#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: login
short_description: Log the berth engine in to (or out of) a registry
version_added: 0.1.0
description:
  - Stores registry credentials where the engine reads them for pulls and pushes (docker's
    C(config.json) format, or its credential helper), after checking them against the
    registry.
  - Idempotent by comparing the stored username and secret with the task's; nothing is
    written, and the registry is not asked, when they already match.
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
attributes:
  check_mode:
    support: full
    details: Check mode verifies the credentials with the registry but writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Not idempotent with O(reauthorize=true).
options:
  registry_url:
    description: Registry host (and port), like C(registry.local:5000); C(docker.io) by default.
    type: str
    default: docker.io
    aliases: [registry, url]
  username:
    description: User name. Required with O(state=present).
    type: str
  password:
    description: Password or token. Required with O(state=present).
    type: str
  reauthorize:
    description: Check and store the credentials even when the stored ones match.
    type: bool
    default: false
  config_path:
    description:
      - The credentials file. Default C($BERTH_AUTH_CONFIG), else
        C($DOCKER_CONFIG/config.json), else C(~/.docker/config.json).
    type: path
    aliases: [dockercfg_path]
  state:
    description: V(present) logs in, V(absent) forgets the registry's credentials.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Log in to the private registry
  berth.engine.login:
    registry_url: registry.local:5000
    username: deploy
    password: "{{ vault_registry_password }}"

- name: Log out
  berth.engine.login:
    registry_url: registry.local:5000
    state: absent
"""

RETURN = r"""
stored_in:
  description: Where the credentials were stored (a file or a credential helper).
  returned: when changed with O(state=present)
  type: str
  sample: /root/.docker/config.json
"""

from ansible_collections.berth.engine.plugins.module_utils.common import EngineModule


def main():
    m = EngineModule({
        "registry_url": {"type": "str", "default": "docker.io", "aliases": ["registry", "url"]},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "reauthorize": {"type": "bool", "default": False},
        "config_path": {"type": "path", "aliases": ["dockercfg_path"]},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    }, supports_check_mode=True,
        required_if=[("state", "present", ("username", "password"))])

    def body():
        from sdk.distribution.credentials import CredentialStore
        from sdk.distribution.login import verify_login

        p = m.params
        store = CredentialStore(p["config_path"])
        registry = p["registry_url"]
        stored = store.get(registry)
        result = {"changed": False}
        if p["state"] == "absent":
            if stored is not None:
                m.act(f"log out of {registry}", lambda: store.erase(registry))
                result["changed"] = True
            return result
        if stored == (p["username"], p["password"]) and not p["reauthorize"]:
            return result
        verify_login(m.engine.image_store, registry, p["username"], p["password"])
        where = m.act(f"log in to {registry} as {p['username']}",
                      lambda: store.store(registry, p["username"], p["password"]))
        result["changed"] = True
        if where:
            result["stored_in"] = where
        return result

    m.run(body)


if __name__ == "__main__":
    main()
