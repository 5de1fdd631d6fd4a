"""How a failed container setup travels from the child to the caller.

The child writes one JSON object ``{"stage", "kind", "errno", "message"}`` to a
close-on-exec pipe and exits; EOF without data means execve succeeded.  The parent
turns the object back into the SDK's error kinds: CommandNotFound (127),
CommandNotExecutable (126) or RuntimeFailure (125).
"""

from __future__ import annotations

import errno as errno_mod
import json
import os
from typing import NoReturn

from sdk.errors import CommandNotExecutable, CommandNotFound, RuntimeFailure, SdkError

NOT_FOUND = "not_found"
NOT_EXECUTABLE = "not_executable"
RUNTIME = "runtime"

_KINDS: dict[str, type[SdkError]] = {
    NOT_FOUND: CommandNotFound, NOT_EXECUTABLE: CommandNotExecutable, RUNTIME: RuntimeFailure,
}


class SetupError(Exception):
    """A setup step failed in the child; ``message`` is complete and user-facing."""

    def __init__(self, message: str, kind: str = RUNTIME, err: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.errno = err


def strerror(err: int | None) -> str:
    """Go-style (lower case) text for an errno, as docker prints them."""
    if not err:
        return "unknown error"
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


def os_text(exc: OSError) -> str:
    return strerror(exc.errno) if exc.errno else str(exc)


def encode(exc: BaseException, stage: str) -> bytes:
    """The JSON report for ``exc`` raised during ``stage``."""
    err = 0
    if isinstance(exc, SetupError):
        kind, message, err = exc.kind, exc.message, exc.errno
    elif isinstance(exc, SdkError):
        kind = {CommandNotFound: NOT_FOUND, CommandNotExecutable: NOT_EXECUTABLE}.get(
            type(exc), RUNTIME)
        message = exc.message
    elif isinstance(exc, OSError):
        kind, err = RUNTIME, exc.errno or 0
        message = f"{stage}: {os_text(exc)}"
        if exc.filename is not None:
            message = f"{stage}: {exc.filename}: {os_text(exc)}"
    else:
        kind, message = RUNTIME, f"{stage}: {type(exc).__name__}: {exc}"
    return json.dumps({"stage": stage, "kind": kind, "errno": err,
                       "message": message}).encode()


def report(fd: int, exc: BaseException, stage: str) -> None:
    """Best effort: the parent treats a dead child without a report as a failure too."""
    data = encode(exc, stage)
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


def read_report(fd: int) -> bytes:
    """Everything the child wrote before exec (closing the pipe) or exit."""
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def to_error(data: bytes) -> SdkError:
    try:
        info = json.loads(data)
        cls = _KINDS.get(info.get("kind"), RuntimeFailure)
        return cls(str(info.get("message") or "container setup failed"))
    except (ValueError, AttributeError):
        return RuntimeFailure(f"container setup failed: {data[:200]!r}")


def raise_report(data: bytes) -> NoReturn:
    raise to_error(data)


def exec_error(name: str, exc: OSError) -> SetupError:
    """docker's messages for a failed execve of the command ``name``."""
    err = exc.errno or 0
    if err in (errno_mod.EACCES, errno_mod.ENOEXEC, errno_mod.EISDIR, errno_mod.EPERM,
               errno_mod.ETXTBSY):
        return SetupError(f'exec: "{name}": {strerror(err)}', NOT_EXECUTABLE, err)
    if err in (errno_mod.ENOENT, errno_mod.ENOTDIR, errno_mod.ELOOP):
        return SetupError(f'exec: "{name}": {strerror(err)}', NOT_FOUND, err)
    return SetupError(f'exec: "{name}": {strerror(err)}', RUNTIME, err)
