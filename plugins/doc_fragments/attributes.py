# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The attributes every berth.engine module documents.

``DOCUMENTATION`` gives each attribute its description; a module states only its
``support`` (and ``details`` where the support has limits), which Ansible merges over the
fragment. The other variables are whole support statements shared by several modules.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying
      target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in
      check_mode), when in diff mode.
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
"""

    # berth.engine.attributes.actiongroup_engine
    ACTIONGROUP_ENGINE = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/berth.engine.engine) in C(module_defaults) to set defaults for
      this module.
    support: full
    membership:
      - berth.engine.engine
"""

    # berth.engine.attributes.full_support: check mode, diff mode and idempotency, no limits
    FULL_SUPPORT = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
"""

    # berth.engine.attributes.info_module: a module that only reads
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: N/A
    details: Changes nothing.
  idempotent:
    support: full
"""
