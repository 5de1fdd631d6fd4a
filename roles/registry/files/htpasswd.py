#!/usr/bin/env python3
"""Make an htpasswd file (bcrypt) hold exactly the given users, idempotently.

Run by roles/registry with the berth virtualenv's Python (bcrypt comes from there).
Users come as JSON on stdin: [{"name": ..., "password": ...}].  A stored hash that still
matches its password is kept (bcrypt salts differ on every run, so re-hashing would
always change the file).  Prints a JSON result: {"changed": bool}.
Usage: htpasswd.py PATH [--check]
"""

import json
import os
import sys

import bcrypt


def main() -> int:
    path, check = sys.argv[1], "--check" in sys.argv[2:]
    users = json.load(sys.stdin)
    current: dict[str, str] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                name, sep, digest = line.strip().partition(":")
                if sep:
                    current[name] = digest
    lines = []
    for user in users:
        name, password = user["name"], user["password"].encode()
        digest = current.get(name, "")
        if not (digest.startswith("$2") and bcrypt.checkpw(password, digest.encode())):
            digest = bcrypt.hashpw(password, bcrypt.gensalt(rounds=10)).decode()
        lines.append(f"{name}:{digest}\n")
    old = "".join(f"{n}:{d}\n" for n, d in current.items())
    changed = "".join(lines) != old
    if changed and not check:
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as f:
            f.writelines(lines)
        os.replace(tmp, path)
    print(json.dumps({"changed": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
