"""berth: a container engine in Python.  ``from sdk import Engine``.

The names below are loaded on first use (PEP 562): ``import sdk.cli.main`` must not pay
for the engine when the command is forwarded to the warm daemon.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms)

if TYPE_CHECKING:
    from sdk.engine import Engine
    from sdk.errors import (
        CommandNotExecutable,
        CommandNotFound,
        ConfigError,
        Conflict,
        ContainerError,
        ContainerNotFound,
        FailedPrecondition,
        ImageNotFound,
        InvalidArgument,
        NotFound,
        SdkError,
        VolumeNotFound,
    )

__version__ = "0.1.0"
__all__ = [
    "Engine", "SdkError", "NotFound", "ImageNotFound", "ContainerNotFound", "VolumeNotFound",
    "Conflict", "InvalidArgument", "ConfigError", "FailedPrecondition", "ContainerError",
    "CommandNotFound", "CommandNotExecutable",
]


def __getattr__(name: str) -> object:
    if name == "Engine":
        from sdk.engine import Engine

        return Engine
    if name in __all__:
        from sdk import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'sdk' has no attribute {name!r}")
