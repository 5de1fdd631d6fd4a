"""A native testinfra backend for berth containers, and the pytest plugin that registers it.

    pytest -p berth_testinfra --hosts=berth://web tests/
    pytest -p berth_testinfra --connection=ansible --ansible-inventory=INV tests/   (Molecule)

testinfra has no backend registry (its ``BACKENDS`` dict is hard-coded) and its
``ansible`` backend runs every command through ``ansible -m shell`` for connections it
does not know, such as ``berth.engine.berth``.  Loading this plugin adds ``berth`` to
``BACKENDS`` and, when every host of the Ansible inventory uses the berth connection
(as in Molecule scenarios on berth), switches the run to this backend, which execs into
the container through the berth SDK in-process (``berth exec`` when the SDK cannot be
imported).  The engine's data root comes from ``ansible_berth_root`` or BERTH_ROOT.
"""

from __future__ import annotations

import os
from typing import Any

BACKEND = "berth_testinfra.backend.BerthBackend"
CONNECTIONS = ("berth.engine.berth", "berth")


def register() -> None:
    from testinfra.backend import BACKENDS

    BACKENDS["berth"] = BACKEND


def _inventory_hosts(inventory: str) -> list[tuple[str, dict[str, Any]]] | None:
    """(name, variables) of every inventory host when all use the berth connection."""
    from testinfra.utils.ansible_runner import AnsibleRunner

    runner = AnsibleRunner(inventory)
    found = []
    for host in runner.get_hosts("all"):
        variables = runner.get_variables(host)
        if variables.get("ansible_connection") not in CONNECTIONS:
            return None
        found.append((str(variables.get("ansible_host") or host), variables))
    return found


def pytest_configure(config: Any) -> None:
    register()
    opt = config.option
    if getattr(opt, "connection", None) != "ansible" or getattr(opt, "force_ansible", False):
        return
    inventory = getattr(opt, "ansible_inventory", None)
    if not inventory:
        return
    hosts = _inventory_hosts(inventory)
    if not hosts:
        return
    for _, variables in hosts:
        for var, env in (("ansible_berth_root", "BERTH_ROOT"),
                         ("ansible_berth_config", "BERTH_CONFIG")):
            if variables.get(var):
                os.environ.setdefault(env, str(variables[var]))
    opt.connection = "berth"
    if not opt.hosts:
        opt.hosts = ",".join(name for name, _ in hosts)


__all__ = ["BACKEND", "CONNECTIONS", "pytest_configure", "register"]
