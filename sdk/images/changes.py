"""Apply Dockerfile-style ``--change`` instructions to an image config (import, commit).

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR
(and STOPSIGNAL for commit) here.  The full Dockerfile parser lives with builds; this
covers the instruction forms ``-c`` takes.
"""

from __future__ import annotations

import json
from typing import Any

from sdk.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
           "WORKDIR", "STOPSIGNAL")


def _json_or_shell(rest: str) -> list[str]:
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(rest: str, instruction: str) -> list[tuple[str, str]]:
    try:
        import shlex

        words = shlex.split(rest, posix=True)
    except ValueError as exc:
        raise InvalidArgument(f"{instruction}: {exc}") from None
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        # legacy form: ENV key value with spaces
        key, _, value = rest.strip().partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{instruction} names can not be blank: {word!r}")
        pairs.append((key, value))
    return pairs


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of the image ``config`` section with each instruction applied."""
    cfg = json.loads(json.dumps(config))
    for change in changes:
        line = change.strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        instruction = word.upper()
        if instruction not in ALLOWED:
            raise InvalidArgument(f"{word} is not a valid change command")
        if instruction == "CMD":
            cfg["Cmd"] = _json_or_shell(rest)
        elif instruction == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(rest)
        elif instruction == "ENV":
            env = [e for e in (cfg.get("Env") or [])]
            for key, value in _pairs(rest, "ENV"):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            cfg["Env"] = env
        elif instruction == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(rest, "LABEL"))
            cfg["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for port in rest.split():
                number, _, proto = port.partition("/")
                if not number.isdigit() or not 0 < int(number) < 65536 or \
                        proto not in ("", "tcp", "udp", "sctp"):
                    raise InvalidArgument(f"invalid port in EXPOSE: {port!r}")
                ports[f"{int(number)}/{proto or 'tcp'}"] = {}
            cfg["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            text = rest.strip()
            paths = json.loads(text) if text.startswith("[") else text.split()
            for path in paths:
                vols[path] = {}
            cfg["Volumes"] = vols
        elif instruction == "USER":
            cfg["User"] = rest.strip()
        elif instruction == "WORKDIR":
            path = rest.strip()
            base = cfg.get("WorkingDir") or "/"
            cfg["WorkingDir"] = path if path.startswith("/") else base.rstrip("/") + "/" + path
        elif instruction == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
        elif instruction == "STOPSIGNAL":
            cfg["StopSignal"] = rest.strip()
    return cfg
