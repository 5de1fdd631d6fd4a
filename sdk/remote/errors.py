"""Engine API error answers -> the SDK's exceptions, with the daemon's message."""

from __future__ import annotations

from sdk import errors


class ServerError(errors.SdkError):
    """The engine service failed (HTTP 5xx or an error inside a progress stream)."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class RemoteUnsupported(errors.FailedPrecondition):
    """The remote client does not offer this method (the embedded Engine does)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not supported by the engine service client "
                         "(sdk.remote); use the embedded Engine(root=...) on the daemon's host")


class RemoteAttributeUnsupported(RemoteUnsupported, AttributeError):
    """An embedded-only Engine attribute: also an AttributeError, so ``hasattr`` and
    ``getattr(engine, "root", None)`` work as for any missing attribute."""


# resource of the request path -> its NotFound, when the message does not say
NOT_FOUND_BY_RESOURCE: dict[str, type[errors.NotFound]] = {
    "containers": errors.ContainerNotFound, "exec": errors.NotFound,
    "images": errors.ImageNotFound, "volumes": errors.VolumeNotFound,
    "networks": errors.NetworkNotFound,
}


def not_found_class(message: str, resource: str) -> type[errors.NotFound]:
    """The NotFound subclass the embedded engine raises for ``message``.

    The message wins over the path: creating a container answers 404 for a missing
    image, connecting to a network 404 for a missing container."""
    text = message.lower()
    if "no such container" in text:
        return errors.ContainerNotFound
    if "no such image" in text or "not found on registry" in text or \
            ("repository" in text and "not found" in text):
        return errors.ImageNotFound
    if "no such volume" in text:
        return errors.VolumeNotFound
    if text.startswith("network ") and text.endswith("not found"):
        return errors.NetworkNotFound
    return NOT_FOUND_BY_RESOURCE.get(resource, errors.NotFound)


def runtime_error(message: str, exit_code: int = 125) -> errors.SdkError:
    """A container start or exec the kernel refused (sdk.runtime.spawn_errors' kinds,
    whose class the API's status and message leave to be read back)."""
    if exit_code == 127 or message.startswith('exec: "') and (
            "executable file not found" in message or
            message.endswith((": no such file or directory", ": not a directory"))):
        return errors.CommandNotFound(message)
    if exit_code == 126 or message.startswith('exec: "'):
        return errors.CommandNotExecutable(message)
    return errors.RuntimeFailure(message)


def error_for(status: int, message: str, resource: str = "",
              starting: bool = False) -> errors.SdkError:
    """``starting``: the request started a container (a 500 is the runtime's)."""
    if status == 500 and starting:
        return runtime_error(message)
    if status == 404:
        return not_found_class(message, resource)(message)
    if status == 409:
        return errors.Conflict(message)
    if status == 400:
        return errors.InvalidArgument(message)
    if status in (401, 403):
        return errors.PermissionDenied(message)
    return ServerError(message, status)


def stream_error(message: str) -> errors.SdkError:
    """An ``{"error": ...}`` line of a pull/import progress stream (status is 200)."""
    text = message.lower()
    if text.startswith(("cannot reach registry", "cannot reach the token server")) or \
            (text.startswith("downloading ") and "cannot reach" in text):
        from sdk.distribution.transport import Unreachable

        return Unreachable(message)
    if "not found" in text or "no such" in text:
        return not_found_class(message, "images")(message)
    return ServerError(message)
