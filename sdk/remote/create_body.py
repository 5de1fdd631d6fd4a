"""docker-py's ``containers.create`` keyword arguments -> ``POST /containers/create``.

The reverse of :mod:`sdk.api.translate`, which maps the body back onto these very
names on the daemon's side; values pass through as docker-py gives them (``"64m"``,
a dict of volumes, ...) so the daemon's single validator
(:func:`sdk.containers.options.build_configs`) accepts and refuses exactly what the
embedded engine does.  Only shapes the wire format has no room for are converted
here (ports, devices, a command string).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sdk.api.translate import CONFIG_KEYS, HOST_KEYS, THROTTLES
from sdk.errors import InvalidArgument

CONFIG_BY_KWARG = {kw: key for key, kw in CONFIG_KEYS.items()}
HOST_BY_KWARG = {kw: key for key, kw in HOST_KEYS.items()}
THROTTLE_BY_KWARG = {kw: key for key, kw in THROTTLES.items()}
# accepted by the embedded create and meaningless on the wire (run's own options)
IGNORED = frozenset({"stdout", "stderr", "stream", "detach"})
# docker-py options the Engine API carries no field for in berth's daemon
UNSUPPORTED = frozenset({"platform", "egress_rate", "ingress_rate", "networking_config",
                         "use_config_proxy"})


def create_body(image: str, command: str | list[str] | None,
                kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(JSON body, ``name`` query parameter); InvalidArgument names what cannot go."""
    from sdk.containers.options import CREATE_KWARGS, _as_list

    unknown = set(kwargs) - CREATE_KWARGS
    if unknown:
        raise InvalidArgument(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    bad = sorted(k for k in set(kwargs) & UNSUPPORTED if kwargs[k] not in (None, "", {}, []))
    if bad:
        raise InvalidArgument(f"containers.create: {', '.join(bad)} cannot be passed to the "
                              "engine service (use the embedded Engine for it)")
    body: dict[str, Any] = {"Image": image}
    host: dict[str, Any] = {}
    cmd = _as_list(command, "command")
    if cmd is not None:
        body["Cmd"] = cmd
    for kw, value in kwargs.items():
        if value is None or kw in IGNORED or kw in UNSUPPORTED:
            continue
        if kw in CONFIG_BY_KWARG:
            body[CONFIG_BY_KWARG[kw]] = _as_list(value, kw) if kw == "entrypoint" else value
        elif kw in HOST_BY_KWARG:
            host[HOST_BY_KWARG[kw]] = value
        elif kw in THROTTLE_BY_KWARG:
            host[THROTTLE_BY_KWARG[kw]] = value
        elif kw == "ports":
            host["PortBindings"] = port_bindings(value)
        elif kw == "mounts":
            host["Mounts"] = list(value)
        elif kw == "ulimits":
            host["Ulimits"] = [dict(u) for u in value]
        elif kw == "devices":
            host["Devices"] = [device(d) for d in value]
        elif kw == "cpus":
            from sdk._internal.units import parse_cpus

            host["NanoCpus"] = parse_cpus(str(value))
        elif kw == "remove":
            host["AutoRemove"] = bool(value) or bool(kwargs.get("auto_remove"))
        elif kw == "attach_stdin" and value:
            body["OpenStdin"] = True
        elif kw == "network" and "network_mode" not in kwargs:
            host["NetworkMode"] = value
        elif kw == "network_disabled" and value:
            host["NetworkMode"] = "none"
        elif kw == "expose":
            body["ExposedPorts"] = {_port_key(p): {} for p in value}
    if body.get("OpenStdin"):        # the daemon reads detach back from StdinOnce
        body["StdinOnce"] = not kwargs.get("detach")
    endpoint: dict[str, Any] = {}
    if kwargs.get("network_aliases"):
        endpoint["Aliases"] = list(kwargs["network_aliases"])
    if kwargs.get("ip"):
        endpoint["IPAMConfig"] = {"IPv4Address": kwargs["ip"]}
    if endpoint:
        mode = host.get("NetworkMode") or "bridge"
        body["NetworkingConfig"] = {"EndpointsConfig": {mode: endpoint}}
        host.setdefault("NetworkMode", mode)
    body["HostConfig"] = host
    name = kwargs.get("name")
    return body, str(name) if name else None


def _port_key(port: Any) -> str:
    key = str(port)
    return key if "/" in key else key + "/tcp"


def port_bindings(ports: Mapping[Any, Any]) -> dict[str, list[dict[str, str]]]:
    """docker-py's ``ports`` ({80: 8080, "53/udp": ("127.0.0.1", 53), 22: None, 81:
    [8081, 8082]}) -> PortBindings."""
    if not isinstance(ports, Mapping):
        raise InvalidArgument("ports must be a mapping of container port to host port")
    out: dict[str, list[dict[str, str]]] = {}
    for port, target in ports.items():
        targets = target if isinstance(target, list) else [target]
        out[_port_key(port)] = [_binding(t) for t in targets]
    return out


def _binding(target: Any) -> dict[str, str]:
    if target is None:
        return {"HostIp": "", "HostPort": ""}
    if isinstance(target, tuple):
        ip = str(target[0]) if target else ""
        port = target[1] if len(target) > 1 else None
        return {"HostIp": ip, "HostPort": "" if port is None else str(port)}
    return {"HostIp": "", "HostPort": str(target)}


def device(spec: Any) -> dict[str, str]:
    """``/dev/x[:/dev/y[:rwm]]`` -> the API's device mapping."""
    if isinstance(spec, Mapping):
        return dict(spec)
    parts = str(spec).split(":")
    return {"PathOnHost": parts[0],
            "PathInContainer": parts[1] if len(parts) > 1 and parts[1] else parts[0],
            "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"}
