#!/usr/bin/python
# Copyright: berth developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: Manage berth networks
version_added: 0.1.0
description:
  - Creates, re-creates and removes bridge networks of the berth engine, and connects or
    disconnects containers.
  - Container membership (O(connected)) is changed in place. The engine cannot change a
    network's driver, addressing, O(internal) or labels in place, so a difference there
    re-creates the network; C(msg) and C(diff) name each differing option with its
    expected and actual value.
  - Re-creating or removing a network that containers use needs O(force=true); they are
    disconnected first and, after a re-creation, connected again (with their aliases).
  - All arguments (CIDRs, addresses, container names) are checked before anything
    changes, so a bad argument fails with one message and leaves the host as it was.
author:
  - berth developers
extends_documentation_fragment:
  - berth.engine.engine
  - berth.engine.attributes
  - berth.engine.attributes.actiongroup_engine
  - berth.engine.attributes.full_support
options:
  name:
    description:
      - Name of the network.
    type: str
    required: true
    aliases: [network_name]
  driver:
    description:
      - Network driver. The engine has C(bridge).
    type: str
    default: bridge
  subnet:
    description:
      - IPv4 subnet in CIDR form, like C(172.30.0.0/16). Unset means the engine picks a
        free one and an existing network's subnet is not compared.
    type: str
  gateway:
    description:
      - Gateway address inside O(subnet). Unset means the subnet's first address, and an
        existing network's gateway is not compared.
    type: str
  ip_range:
    description:
      - Sub-range of O(subnet) (CIDR) that containers get their addresses from.
    type: str
  internal:
    description:
      - An internal network has no route to the outside (no masquerading, no forwarding).
    type: bool
    default: false
  labels:
    description:
      - Labels of the network. Labels the network has beyond these are not a difference.
    type: dict
  connected:
    description:
      - Containers (names or IDs) that must be connected to the network.
      - Without O(appends), containers connected to the network but not listed here are
        disconnected. Unset means membership is not managed.
    type: list
    elements: str
    aliases: [containers]
  appends:
    description:
      - Only connect the containers of O(connected); never disconnect others.
    type: bool
    default: false
    aliases: [incremental]
  force:
    description:
      - Disconnect the network's containers when it has to be re-created or removed.
    type: bool
    default: false
  state:
    description:
      - V(present) creates (or re-creates) the network, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: A network for the web tier
  berth.engine.network:
    name: web
    subnet: 172.30.0.0/24
    gateway: 172.30.0.1
    labels:
      tier: web

- name: Make sure these containers are on it (others stay connected)
  berth.engine.network:
    name: web
    subnet: 172.30.0.0/24
    connected: [frontend, api]
    appends: true

- name: Remove it, disconnecting whatever still uses it
  berth.engine.network:
    name: web
    state: absent
    force: true
"""

RETURN = r"""
network:
  description: The network's inspect document (empty after removal).
  returned: always
  type: dict
  sample: {"Name": "web", "Driver": "bridge", "Internal": false,
           "IPAM": {"Config": [{"Subnet": "172.30.0.0/24", "Gateway": "172.30.0.1"}]}}
differences:
  description: Options that differ from the existing network, each with expected and actual.
    Differences other than C(connected) make the module re-create the network.
  returned: always
  type: list
  elements: dict
  sample: [{"option": "subnet", "expected": "172.31.0.0/24", "actual": "172.30.0.0/24"}]
actions:
  description: What the task did (would do, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create network web", "connect api to network web"]
"""

from ansible_collections.berth.engine.plugins.module_utils.common import EngineModule
from ansible_collections.berth.engine.plugins.module_utils.compare import (
    Difference,
    differences,
    explain,
)


def _strings(values):
    return {str(k): str(v) for k, v in (values or {}).items()}


def validate(params):
    """Normalised subnet/gateway/ip_range (strings), or an SdkError naming the bad one."""
    from sdk.errors import InvalidArgument
    from sdk.network import ipam

    subnet = ipam.parse_subnet(params["subnet"]) if params["subnet"] else None
    rng = ipam.parse_subnet(params["ip_range"], "ip_range") if params["ip_range"] else None
    if params["gateway"] and not subnet:
        raise InvalidArgument("gateway needs subnet")
    if rng and not subnet:
        raise InvalidArgument("ip_range needs subnet")
    if subnet and rng and not rng.subnet_of(subnet):
        raise InvalidArgument(f"ip_range {rng} is not inside subnet {subnet}")
    gateway = str(ipam.gateway_for(subnet, params["gateway"])) \
        if subnet and params["gateway"] else None
    if params["driver"] != "bridge":
        raise InvalidArgument(f"network driver {params['driver']!r} is not supported (bridge)")
    return (str(subnet) if subnet else None, gateway, str(rng) if rng else None)


def summary(attrs, members):
    pool = ((attrs.get("IPAM") or {}).get("Config") or [{}])[0] or {}
    return {"driver": attrs.get("Driver"), "subnet": pool.get("Subnet"),
            "gateway": pool.get("Gateway"), "ip_range": pool.get("IPRange") or None,
            "internal": bool(attrs.get("Internal")), "labels": attrs.get("Labels") or {},
            "connected": sorted(members)}


def network_differences(p, wanted, current):
    subnet, gateway, ip_range = wanted
    out = differences("driver", p["driver"], current["driver"], "value", "strict")
    if subnet:
        out += differences("subnet", subnet, current["subnet"], "value", "strict")
        out += differences("ip_range", ip_range, current["ip_range"], "value", "strict")
    if gateway:
        out += differences("gateway", gateway, current["gateway"], "value", "strict")
    out += differences("internal", p["internal"], current["internal"], "value", "strict")
    if p["labels"] is not None:
        out += differences("labels", _strings(p["labels"]), current["labels"], "dict",
                           "allow_more_present")
    return out


def main():
    m = EngineModule({
        "name": {"type": "str", "required": True, "aliases": ["network_name"]},
        "driver": {"type": "str", "default": "bridge"},
        "subnet": {"type": "str"},
        "gateway": {"type": "str"},
        "ip_range": {"type": "str"},
        "internal": {"type": "bool", "default": False},
        "labels": {"type": "dict"},
        "connected": {"type": "list", "elements": "str", "aliases": ["containers"]},
        "appends": {"type": "bool", "default": False, "aliases": ["incremental"]},
        "force": {"type": "bool", "default": False},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    }, supports_check_mode=True)

    def body():
        from sdk.errors import Conflict, InvalidArgument, NotFound

        p = m.params
        engine = m.engine
        name = p["name"]
        try:
            existing = engine.networks.get(name)
        except NotFound:
            existing = None
        if existing is not None and existing.name != name:
            existing = None         # an ID prefix matched: the task names a network
        service = engine.networks.service

        def members_of(net):
            """{container name: (id, aliases, primary)} of the containers using ``net``."""
            out = {}
            for cid in service.users(service.get(net.id)):
                c = engine.containers.get(cid)
                cfg = ((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(
                    name) or {}
                primary = (c.attrs.get("HostConfig") or {}).get("NetworkMode") == name
                out[c.name] = (c.id, list(cfg.get("Aliases") or []), primary)
            return out

        members = members_of(existing) if existing else {}
        before = summary(existing.attrs, members) if existing else {}
        result = {"changed": False, "network": existing.attrs if existing else {},
                  "differences": []}

        def disconnect_all(net, why):
            pinned = sorted(n for n, (_, _, primary) in members.items() if primary)
            if pinned:
                raise Conflict(f"network {name} {why}, but it is the network mode of "
                               f"container(s) {', '.join(pinned)}: remove them first")
            if members and not p["force"]:
                raise Conflict(f"network {name} {why}, but container(s) "
                               f"{', '.join(sorted(members))} are connected: set force: "
                               "true to disconnect them")
            for cname, (cid, _, _) in sorted(members.items()):
                m.act(f"disconnect {cname} from network {name}",
                      lambda cid=cid: net.disconnect(cid, force=True))

        if p["state"] == "absent":
            if existing:
                disconnect_all(existing, "is to be removed")
                m.act(f"remove network {name}", existing.remove)
                result.update(changed=True, network={}, msg=f"removed network {name}")
            if m.module._diff:
                result["diff"] = {"before": before, "after": {}}
            return result

        wanted = validate(p)       # before any change: a bad CIDR changes nothing
        targets = {}               # name -> id of the containers `connected` names
        for ref in p["connected"] or []:
            try:
                c = engine.containers.get(ref)
            except NotFound:
                raise NotFound(f"connected: container {ref} not found") from None
            mode = (c.attrs.get("HostConfig") or {}).get("NetworkMode") or ""
            if mode in ("none", "host") or mode.startswith("container:"):
                raise InvalidArgument(f"connected: container {c.name} uses network mode "
                                      f"{mode}: it cannot be connected to network {name}")
            targets[c.name] = c.id

        diffs = network_differences(p, wanted, before) if existing else []
        result["differences"] = [{"option": d.option, "expected": d.expected,
                                  "actual": d.actual} for d in diffs]
        subnet, gateway, ip_range = wanted

        def create():
            ipam = {"Config": [{"Subnet": subnet, "Gateway": gateway, "IPRange": ip_range}]} \
                if subnet else None
            return engine.networks.create(name, driver=p["driver"], ipam=ipam,
                                          internal=p["internal"], labels=_strings(p["labels"]))

        net = existing
        keep = {}                  # members to connect again after a re-creation
        if existing is None:
            net = m.act(f"create network {name}", create)
            result.update(changed=True, msg=f"created network {name}")
        elif diffs:
            disconnect_all(existing, f"must be re-created ({explain(diffs)})")
            m.act(f"remove network {name}", existing.remove)
            net = m.act(f"create network {name}", create)
            result.update(changed=True, msg=f"re-created network {name}: {explain(diffs)}")
            if p["connected"] is None or p["appends"]:
                keep = {n: v for n, v in members.items() if n not in targets}
            members = {}
        current = set(members)
        for cname, (cid, aliases, _) in sorted(keep.items()):
            m.act(f"connect {cname} to network {name}",
                  lambda cid=cid, aliases=aliases: net.connect(cid, aliases=aliases or None))
            current.add(cname)
        membership = []
        for cname, cid in sorted(targets.items()):
            if cname not in current:
                m.act(f"connect {cname} to network {name}", lambda cid=cid: net.connect(cid))
                membership.append(cname)
                current.add(cname)
        if p["connected"] is not None and not p["appends"]:
            for cname in sorted(set(members) - set(targets)):
                cid = members[cname][0]
                m.act(f"disconnect {cname} from network {name}",
                      lambda cid=cid: existing.disconnect(cid, force=True))
                membership.append(cname)
                current.discard(cname)
        if membership and not result["changed"]:
            result.update(changed=True, msg=f"changed the containers of network {name}: "
                          f"{', '.join(membership)}")
        if existing and set(before["connected"]) != current:
            diffs = diffs + [Difference("connected", sorted(current), before["connected"])]
            result["differences"].append({"option": "connected", "expected": sorted(current),
                                          "actual": before["connected"]})
        if net is not None and not m.check_mode and result["changed"]:
            net = engine.networks.get(name)
            result["network"] = net.attrs
        if m.module._diff:
            after = dict(before) if existing else {
                "driver": p["driver"], "subnet": subnet, "gateway": gateway,
                "ip_range": ip_range, "internal": p["internal"], "labels": {}}
            for d in diffs:
                key = d.option.split(".", 1)
                if key[0] == "labels":
                    after["labels"] = {**after.get("labels", {}), key[1]: d.expected}
                else:
                    after[d.option] = d.expected
            if not existing:
                after["labels"] = _strings(p["labels"])
                after["connected"] = sorted(current)
            result["diff"] = {"before": before, "after": after}
        return result

    m.run(body)


if __name__ == "__main__":
    main()
