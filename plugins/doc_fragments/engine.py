# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Options every berth.engine module shares."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  engine_root:
    description:
      - Data root of the engine on the managed host (images, containers, volumes).
      - When unset, the E(BERTH_ROOT) environment variable, else C(data-root) of the
        engine's daemon.json, else C(/var/lib/berth).
    type: path
  engine_config:
    description:
      - The engine's daemon.json on the managed host.
      - When unset, the E(BERTH_CONFIG) environment variable, else C(/etc/berth/daemon.json).
    type: path
requirements:
  - The berth SDK (Python package C(sdk) of berth-engine) on the managed host, importable by
    the interpreter Ansible uses there; the P(berth.engine.engine#role) role installs it.
  - Root on the managed host (the engine manages namespaces, mounts and cgroups).
notes:
  - The modules drive the engine in-process through its SDK; no daemon or socket is needed.
"""
