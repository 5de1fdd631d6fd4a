"""berth: a container engine in Python.  ``from sdk import Engine``."""

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
