"""The host's architecture in Go's (and so OCI's) names."""

from __future__ import annotations

import os

GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def goarch() -> str:
    machine = os.uname().machine
    return GOARCH.get(machine, machine)
