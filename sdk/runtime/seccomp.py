"""Seccomp for containers, without libseccomp: Docker-format profiles compiled to
classic BPF in Python and installed with ``seccomp(2)`` through ctypes.

    profile = default_profile()                       # or load_profile_file(path)
    program = compile_profile(profile, capabilities=caps)
    install(program)                                  # last step before execve

``--security-opt seccomp=unconfined`` is the caller's business: it simply does not
install anything. Compiled programs are cached in-process (the default profile per
capability set), since compiling sits on the container start path.

Modules: ``seccomp_profile`` (Docker's default profile as data), ``seccomp_syscalls``
(name -> number tables), ``seccomp_parse`` (validation and resolution of a profile for
one container), ``seccomp_bpf`` (code generation).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sdk.errors import InvalidArgument, RuntimeFailure
from sdk.runtime import seccomp_bpf
from sdk.runtime.seccomp_parse import normalize_cap, parse_profile, resolve
from sdk.runtime.seccomp_profile import default_profile
from sdk.runtime.seccomp_syscalls import TABLES

SECCOMP_SET_MODE_FILTER = 1
ARCHES = tuple(TABLES)
_CACHE_SIZE = 32


@dataclass(frozen=True, slots=True)
class SeccompProgram:
    filter: bytes  # struct sock_filter array, ready for seccomp(SECCOMP_SET_MODE_FILTER)
    flags: int = 0  # SECCOMP_FILTER_FLAG_* the profile asked for

    @property
    def instructions(self) -> int:
        return len(self.filter) // 8


def host_arch() -> str:
    machine = os.uname().machine
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def host_kernel() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def supported() -> bool:
    """Whether this host's architecture has a syscall table here."""
    return host_arch() in TABLES


def _caps(capabilities: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize_cap(c) for c in capabilities)


def _compile(profile: Any, caps: frozenset[str], arch: str,
             kernel: tuple[int, int]) -> SeccompProgram:
    if arch not in TABLES:
        raise InvalidArgument(f"seccomp: unsupported architecture {arch!r} "
                              f"(supported: {', '.join(ARCHES)})")
    policy = resolve(parse_profile(profile), capabilities=caps, arch=arch, kernel=kernel)
    program = seccomp_bpf.generate(policy)
    if len(program) > seccomp_bpf.BPF_MAXINSNS:
        raise InvalidArgument(f"seccomp profile compiles to {len(program)} BPF instructions, "
                              f"over the kernel's limit of {seccomp_bpf.BPF_MAXINSNS}")
    return SeccompProgram(filter=seccomp_bpf.encode(program), flags=policy.flags)


_compiled: OrderedDict[tuple[str, frozenset[str], str, tuple[int, int]], SeccompProgram] = (
    OrderedDict())


def compile_profile(profile: dict[str, Any], *, capabilities: Iterable[str],
                    arch: str = "x86_64",
                    kernel: tuple[int, int] | None = None) -> SeccompProgram:
    """Compile a Docker-format profile for a container with ``capabilities`` (its bounding
    set, ``CAP_`` prefix optional) on ``arch``; ``kernel`` (major, minor) is what
    ``minKernel`` is checked against, the running kernel by default.

    Raises InvalidArgument, naming the entry, for a malformed profile. Syscall names this
    arch does not have are skipped. Results are cached by profile content.
    """
    caps, kern = _caps(capabilities), kernel or host_kernel()
    try:
        key = (json.dumps(profile, sort_keys=True), caps, arch, kern)
    except (TypeError, ValueError):  # not JSON data: let the parser say what is wrong
        return _compile(profile, caps, arch, kern)
    hit = _compiled.get(key)
    if hit is not None:
        _compiled.move_to_end(key)
        return hit
    program = _compile(profile, caps, arch, kern)
    _compiled[key] = program
    if len(_compiled) > _CACHE_SIZE:
        _compiled.popitem(last=False)
    return program


@lru_cache(maxsize=_CACHE_SIZE)
def _default_program(caps: frozenset[str], arch: str, kernel: tuple[int, int]) -> SeccompProgram:
    return _compile(default_profile(), caps, arch, kernel)


def default_program(capabilities: Iterable[str], *, arch: str | None = None,
                    kernel: tuple[int, int] | None = None) -> SeccompProgram:
    """Docker's default profile compiled for ``capabilities`` (host arch unless given),
    cached per capability set."""
    return _default_program(_caps(capabilities), arch or host_arch(), kernel or host_kernel())


def build(capabilities: Iterable[str]) -> bytes:
    """The default profile's filter for ``capabilities`` on this host, as raw bytes."""
    return default_program(capabilities).filter


def load_profile_json(text: str | bytes, *, source: str = "seccomp profile") -> dict[str, Any]:
    """Parse and validate profile JSON (the content ``--security-opt seccomp=`` carries)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"decoding {source} failed: {e}")
    parse_profile(doc)  # validate now, so a bad profile fails at create, not at start
    return doc


def load_profile_file(path: str) -> dict[str, Any]:
    """Read ``--security-opt seccomp=/path.json``; ``unconfined`` is the caller's."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {e.strerror}")
    return load_profile_json(text, source=f"seccomp profile {path}")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def install(program: SeccompProgram | bytes) -> None:
    """Load ``program`` into the calling thread with seccomp(SECCOMP_SET_MODE_FILTER).

    Needs no_new_privs or CAP_SYS_ADMIN. The filter survives execve and cannot be
    removed; it applies to the calling thread only unless the profile asked for TSYNC.
    Raises RuntimeFailure when the kernel refuses it.
    """
    if isinstance(program, bytes | bytearray):
        program = SeccompProgram(filter=bytes(program))
    raw = program.filter
    count = len(raw) // 8
    if not raw or len(raw) % 8 or count > seccomp_bpf.BPF_MAXINSNS:
        raise RuntimeFailure(f"seccomp: invalid filter of {len(raw)} bytes")
    arch = host_arch()
    if arch not in TABLES:
        raise RuntimeFailure(f"seccomp: unsupported architecture {arch!r}")
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(count, ctypes.cast(buf, ctypes.c_void_p))
    rc = _libc.syscall(ctypes.c_long(TABLES[arch]["seccomp"]),
                       ctypes.c_long(SECCOMP_SET_MODE_FILTER), ctypes.c_ulong(program.flags),
                       ctypes.byref(fprog))
    if rc < 0:
        err = ctypes.get_errno()
        hint = " (needs no_new_privs or CAP_SYS_ADMIN)" if err == errno.EACCES else ""
        raise RuntimeFailure(f"seccomp: installing the filter failed: "
                             f"{os.strerror(err)}{hint}")


__all__ = ["SeccompProgram", "default_profile", "compile_profile", "default_program",
           "load_profile_file", "load_profile_json", "install", "build", "supported",
           "host_arch", "host_kernel"]
