"""ansible-test's validate-modules on every berth.engine plugin, run directly (offline).

``ansible-test sanity`` bootstraps its own virtualenv with pip, which cannot work here; its
validate-modules check is plain Python shipped with ansible-core
(``ansible_test/_util/controller/sanity/validate-modules``) and only needs
``voluptuous`` and ``antsibull-docs-parser``, so it is run as ansible-test would run it,
from an ``ansible_collections/berth/engine`` path, with the argument-spec analysis on.

Accepted, each with its reason (what an ``ignore-2.17.txt`` would say):

* ``missing-gplv3-license``: the collection is Apache-2.0, not GPLv3;
* ``invalid-documentation`` of ``author``: the schema wants a GitHub handle,
  ``Name (@handle)``, and the project has not chosen one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VALIDATE = Path(importlib.util.find_spec("ansible_test").origin).parent / \
    "_util" / "controller" / "sanity" / "validate-modules" \
    if importlib.util.find_spec("ansible_test") else None
MISSING = [m for m in ("voluptuous", "antsibull_docs_parser", "ansible_test")
           if importlib.util.find_spec(m) is None]

pytestmark = pytest.mark.skipif(bool(MISSING), reason="validate-modules needs "
                                f"{', '.join(MISSING)} (pip: voluptuous antsibull-docs-parser)")

ACCEPTED = {"missing-gplv3-license": "",
            "invalid-documentation": "DOCUMENTATION.author: Invalid author"}
PLUGINS = {"module": "plugins/modules", "connection": "plugins/connection",
           "inventory": "plugins/inventory"}


def validate(tmp_path: Path, plugin_type: str) -> dict:
    base = tmp_path / "ansible_collections" / "berth"
    base.mkdir(parents=True, exist_ok=True)
    engine = base / "engine"
    if not engine.exists():
        engine.symlink_to(REPO)
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / PLUGINS[plugin_type]).glob("*.py")
                   if not p.name.startswith("_"))
    code = ("import sys\nfrom validate_modules.main import main\n"
            "sys.argv = ['validate-modules'] + sys.argv[1:]\nmain()\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(VALIDATE), *sys.path]))
    proc = subprocess.run(
        [sys.executable, "-c", code, "--format", "json", "--collection",
         "ansible_collections/berth/engine", "--collection-version", "0.1.0",
         "--plugin-type", plugin_type, *(["--arg-spec"] if plugin_type == "module" else []),
         *files], cwd=engine, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]     # 3: it reported errors
    return json.loads(proc.stdout or "{}")


@pytest.mark.parametrize("plugin_type", sorted(PLUGINS))
def test_validate_modules(tmp_path: Path, plugin_type: str) -> None:
    report = validate(tmp_path, plugin_type)
    problems = [f"{path}: {e['code']}: {e['msg']}"
                for path, found in report.items()
                for e in found.get("errors", []) + found.get("traces", [])
                if not (e.get("code") in ACCEPTED and
                        e.get("msg", "").startswith(ACCEPTED[e["code"]]))]
    assert problems == []
