"""The SDK's error tree: one root, a few kinds, errors that carry context.

Every error the engine raises on purpose is an ``SdkError``; the CLI maps them to
docker's exit code 125 and prints ``str(error)`` on one line.
"""

from __future__ import annotations


class SdkError(Exception):
    """Root of every error the engine raises on purpose."""

    exit_code = 125

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(SdkError):
    """A named object (image, container, volume, ...) does not exist."""


class ImageNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    pass


class VolumeNotFound(NotFound):
    pass


class NetworkNotFound(NotFound):
    pass


class Conflict(SdkError):
    """The request clashes with the current state (name in use, container running...)."""


class InvalidArgument(SdkError):
    """Bad input: a malformed reference, unit, flag value, tarball, config key..."""


class ConfigError(InvalidArgument):
    """daemon.json (or another config file) is invalid."""


class FailedPrecondition(SdkError):
    """The host cannot do what was asked (no overlayfs, no SELinux, not root...)."""


class PermissionDenied(SdkError):
    pass


class RuntimeFailure(SdkError):
    """The kernel refused a step of starting a container."""


class ContainerError(SdkError):
    """A non-detached run exited non-zero (docker-py's ContainerError)."""

    def __init__(
        self, container: object, exit_status: int, command: object, image: str, stderr: bytes
    ) -> None:
        self.container = container
        self.exit_status = exit_status
        self.command = command
        self.image = image
        self.stderr = stderr
        err = stderr.decode(errors="replace").strip() if stderr else ""
        msg = f"Command {command!r} in image {image!r} returned non-zero exit status {exit_status}"
        super().__init__(msg + (f": {err}" if err else ""))


class CommandNotFound(SdkError):
    """The container's command could not be found (docker exit code 127)."""

    exit_code = 127


class CommandNotExecutable(SdkError):
    """The container's command exists but cannot be invoked (docker exit code 126)."""

    exit_code = 126


__all__ = [
    "SdkError", "NotFound", "ImageNotFound", "ContainerNotFound", "VolumeNotFound",
    "NetworkNotFound", "Conflict", "InvalidArgument", "ConfigError", "FailedPrecondition",
    "PermissionDenied", "RuntimeFailure", "ContainerError", "CommandNotFound",
    "CommandNotExecutable",
]
