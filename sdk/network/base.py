"""State shared by the parts of the network service (engine, database, firewall)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.network.endpoint import Endpoint
    from sdk.network.netlink import Netlink
    from sdk.network.rules import Firewall


class ServiceBase:
    """The engine-facing core every part of ``NetworkService`` builds on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config
        self.mtu = int(engine.config.mtu or 1500)
        self._ensure_schema()

    @property
    def db(self) -> Any:
        return self.engine.db

    def _ensure_schema(self) -> None:
        if self.db.one("SELECT 1 FROM sqlite_master WHERE name='net_ports'") is None:
            from sdk.store.db import SCHEMA

            self.db.conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")

    @property
    def firewall(self) -> Firewall | None:
        if not self.config.iptables:
            return None
        if not hasattr(self, "_fw"):
            from sdk.network.rules import IptablesFirewall

            self._fw: Firewall = IptablesFirewall()
        return self._fw

    if TYPE_CHECKING:
        # what the parts call on each other (defined in records, bridges, endpoint and
        # names.py): declared here so that each part type-checks on its own
        def get(self, ref: str) -> dict[str, Any]: ...
        def _row(self, row: Any) -> dict[str, Any]: ...
        def _taken(self, exclude: str = "") -> list[tuple[IPv4Network, str]]: ...
        def _choose(self, taken: Sequence[tuple[IPv4Network, str]], exclude: str = ""
                    ) -> IPv4Network: ...
        def ensure_bridge(self, net: Mapping[str, Any], nl: Netlink | None = None
                          ) -> None: ...
        def _ensure_bridge_locked(self, net: Mapping[str, Any]) -> None: ...
        def _delete_bridge(self, net: Mapping[str, Any]) -> bool: ...
        def mtu_of(self, net: Mapping[str, Any]) -> int: ...
        def _apply_rules(self, net: Mapping[str, Any]) -> None: ...
        def _rules_changed(self, net: Mapping[str, Any]) -> bool: ...
        def link_rules_for(self, cid: str, doc: Mapping[str, Any], ep: Endpoint
                           ) -> list[str]: ...
        def configured(self, doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]: ...
        def _lease(self, conn: Any, cid: str, index: int, net: dict[str, Any],
                   cfg: Mapping[str, Any], name: str, pid: int, pid_start: int
                   ) -> Endpoint: ...
        def release_container(self, cid: str, *, explicit: bool = False,
                              had_ports: bool = True) -> None: ...
        def announce(self, cid: str, network_ids: Sequence[str],
                     doc: Mapping[str, Any] | None = None) -> None: ...
        def withdraw(self, cid: str, leases: Sequence[Mapping[str, Any]]) -> None: ...
        def write_hosts_of(self, doc: Mapping[str, Any]) -> None: ...
