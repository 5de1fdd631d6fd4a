# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""berth.engine.container: on the controller itself the module runs in a fork of the worker
(see plugins/plugin_utils/in_process.py); anywhere else as any module does."""

from __future__ import annotations

from ansible_collections.berth.engine.plugins.plugin_utils.in_process import InProcessAction


class ActionModule(InProcessAction):
    PRELOAD = ("ansible_collections.berth.engine.plugins.module_utils.common",)
