"""Networks: the service behind ``engine.networks``, assembled from parts with one job each.

- records.py: network records (create, list, inspect, remove, prune, built-ins)
- bridges.py: bridge devices, their address, sysctls and rules; subnet choice
- endpoint.py: a start's endpoints (leases, held host ports) and their release
- connect.py: ``network connect`` / ``disconnect``
- names.py: /etc/hosts of network members and legacy links
- repair.py: what dead supervisors left behind
- locks.py: the host-wide lock every engine takes for bridges and leases

This module keeps the public names other parts of berth import from it.
"""

from __future__ import annotations

from sdk.network.bridges import BridgeDevices
from sdk.network.connect import Connections
from sdk.network.endpoint import (
    PREFIX,
    Attachment,
    Endpoint,
    Endpoints,
    cleared_settings,
    endpoint_doc,
    veth_name,
)
from sdk.network.locks import LOCK_PATH, host_lock
from sdk.network.names import Names
from sdk.network.records import BUILTIN, NetworkRecords, network_doc
from sdk.network.repair import Repair


class NetworkService(NetworkRecords, BridgeDevices, Endpoints, Connections, Names, Repair):
    """Everything berth does with networks, for one engine."""


__all__ = ["NetworkService", "Attachment", "Endpoint", "veth_name", "cleared_settings",
           "host_lock", "LOCK_PATH", "BUILTIN", "PREFIX", "endpoint_doc", "network_doc"]
