"""Bridge driver options (``network create -o KEY=VALUE``): checked once at create time,
and the policy a network's rules and devices follow (icc, masquerade, MTU).

Docker ignores driver options it does not know.  berth refuses keys in Docker's own
``com.docker.network.`` namespace that it does not implement (a typo such as
``enable_icc`` spelled ``enable-icc`` would otherwise leave the network open without a
word); keys outside that namespace are stored as given, like Docker does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sdk.errors import InvalidArgument

NAME = "com.docker.network.bridge.name"
ICC = "com.docker.network.bridge.enable_icc"
MASQ = "com.docker.network.bridge.enable_ip_masquerade"
MTU = "com.docker.network.driver.mtu"
DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
SUPPORTED = (NAME, ICC, MASQ, MTU)
_TRUE = ("1", "t", "T", "TRUE", "true", "True")        # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class BridgeConfig(Protocol):
    """The daemon.json keys the default bridge follows."""

    icc: bool
    ip_masq: bool


def parse_bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"invalid value {value!r} for option {key}: expected true or false")


def validate(options: Mapping[str, Any]) -> dict[str, str]:
    """The options of a new user network, checked (one error naming the bad one)."""
    out: dict[str, str] = {}
    for key, raw in options.items():
        value = str(raw)
        if key.startswith("com.docker.network.") and key not in SUPPORTED:
            raise InvalidArgument(f"network option {key} is not supported by berth "
                                  f"(supported: {', '.join(SUPPORTED)})")
        if key in (ICC, MASQ):
            value = "true" if parse_bool(key, value) else "false"
        elif key == MTU:
            if not re.fullmatch(r"[0-9]+", value) or not 68 <= int(value) <= 65535:
                raise InvalidArgument(f"invalid value {value!r} for option {key}: expected "
                                      "an MTU between 68 and 65535")
            value = str(int(value))
        elif key == NAME and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}", value):
            raise InvalidArgument(f"invalid bridge name {value!r} for option {key}: at "
                                  "most 15 characters of [a-zA-Z0-9_.-]")
        out[key] = value
    return out


@dataclass(frozen=True)
class BridgePolicy:
    """What a network's firewall rules and devices follow."""

    icc: bool           # containers on the bridge may talk to each other
    masquerade: bool    # outbound traffic is masqueraded
    mtu: int


def policy(net: Mapping[str, Any], config: BridgeConfig, mtu: int) -> BridgePolicy:
    """The default bridge follows daemon.json (icc, ip-masq, mtu) as it is now; a user
    network its own options, with ip-masq false in daemon.json turning masquerade off
    everywhere."""
    if net.get("name") == "bridge":
        return BridgePolicy(bool(config.icc), bool(config.ip_masq), mtu)
    opts = (net.get("doc") or {}).get("Options") or {}
    icc = parse_bool(ICC, opts[ICC]) if ICC in opts else True
    masq = parse_bool(MASQ, opts[MASQ]) if MASQ in opts else True
    return BridgePolicy(icc, masq and bool(config.ip_masq), int(opts.get(MTU) or mtu))


def effective_options(net: Mapping[str, Any], config: BridgeConfig, mtu: int
                      ) -> dict[str, str]:
    """``Options`` as inspect shows them: the default bridge's reflect daemon.json now."""
    opts = dict((net.get("doc") or {}).get("Options") or {})
    if net.get("name") == "bridge":
        pol = policy(net, config, mtu)
        opts.update({ICC: str(pol.icc).lower(), MASQ: str(pol.masquerade).lower(),
                     MTU: str(pol.mtu)})
    return opts
