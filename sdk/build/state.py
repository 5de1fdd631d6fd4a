"""What a build carries from step to step: options, per-stage state, config shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sdk.errors import SdkError

if TYPE_CHECKING:
    from sdk.images.service import LayerRecord

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
MAX_LAYERS = 127
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                        "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                        "all_proxy"})
CONFIG_ORDER = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                "AttachStderr", "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env",
                "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
                "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels",
                "StopSignal", "StopTimeout", "Shell")
CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
OMIT_EMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
              "StopSignal", "StopTimeout", "Shell")
_NOT_ONBUILD = ("ONBUILD", "FROM", "MAINTAINER")


class BuildError(SdkError):
    """A build step failed (docker build exits 1)."""

    exit_code = 1


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    buildargs: dict[str, str] = field(default_factory=dict)
    nocache: bool = False
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    rm: bool = True
    force_rm: bool = False
    pull: bool = False
    network_mode: str | None = None


@dataclass
class Stage:
    name: str
    index: int
    image_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerRecord] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    base: dict[str, Any] = field(default_factory=dict)     # architecture, os, ...
    maintainer: str = ""
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False


def normalize_config(cfg: dict[str, Any]) -> dict[str, Any]:
    merged = {**CONFIG_DEFAULTS, **cfg}
    out: dict[str, Any] = {}
    for key in CONFIG_ORDER:
        if key in merged and not (key in OMIT_EMPTY and not merged[key]):
            out[key] = merged[key]
    for key, value in merged.items():
        if key not in out and key not in CONFIG_ORDER:
            out[key] = value
    return out


