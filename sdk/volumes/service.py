"""Named and anonymous volumes of the ``local`` driver.

A plain volume is a directory ``<root>/volumes/<name>/_data``.  Driver options follow
Docker's local driver: ``type=tmpfs`` (with ``o=size=..``) and bind-backed volumes
(``type=none,o=bind,device=/host/dir``).  A tmpfs volume is mounted inside each
container's own mount namespace, so it can never leak a host mount (unlike Docker's,
its content is therefore per container).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sdk.errors import Conflict, InvalidArgument, VolumeNotFound
from sdk.events import record as log_event
from sdk.runtime.spec import Mount
from sdk.snapshots.fsutil import disk_usage
from sdk.store.db import Database

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
ALLOWED_OPTS = frozenset({"type", "o", "device"})


class VolumeService:
    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = root / "volumes"

    def path(self, name: str) -> Path:
        return self.root / name / "_data"

    def _validate(self, name: str, driver: str, opts: dict[str, str]) -> None:
        if not NAME_RE.fullmatch(name):
            raise InvalidArgument(
                f'"{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        if driver != "local":
            raise InvalidArgument(f"volume driver {driver!r} is not supported (only local)")
        unknown = set(opts) - ALLOWED_OPTS
        if unknown:
            raise InvalidArgument(f"invalid option key: {sorted(unknown)[0]!r} "
                                  "(the local driver takes type, o and device)")
        kind = opts.get("type", "")
        o = opts.get("o", "")
        if kind == "tmpfs":
            for part in filter(None, o.split(",")):
                key = part.split("=", 1)[0]
                if key not in ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks",
                               "noexec", "nosuid", "nodev", "ro", "rw", "exec", "suid"):
                    raise InvalidArgument(f"invalid tmpfs option {part!r} in o={o!r}")
        elif kind or o or opts.get("device"):
            if "bind" not in o.split(","):
                raise InvalidArgument(
                    f"local volume type {kind!r} with o={o!r} is not supported: use "
                    "type=tmpfs, or type=none,o=bind,device=/host/dir")
            device = opts.get("device", "")
            if not device.startswith("/"):
                raise InvalidArgument("bind-backed volume needs device=/absolute/host/path")
            if not os.path.isdir(device):
                raise InvalidArgument(f"failed to mount local volume: mount {device}: "
                                      "no such file or directory")

    def create(self, name: str | None = None, driver: str = "local",
               driver_opts: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               *, anonymous: bool = False) -> dict[str, Any]:
        opts = {str(k): str(v) for k, v in (driver_opts or {}).items()}
        labels = {str(k): str(v) for k, v in (labels or {}).items()}
        anonymous = anonymous or not name
        name = name or secrets.token_hex(32)
        self._validate(name, driver, opts)
        existing = self.db.one("SELECT * FROM volumes WHERE name=?", (name,))
        if existing is not None:
            if json.loads(existing["options"]) != opts and opts:
                raise Conflict(f"volume {name} already exists with different options")
            return self.inspect(name)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = self.path(name)
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o701)
        with self.db.write() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO volumes VALUES (?,?,?,?,?,?)",
                               (name, driver, created, int(anonymous), json.dumps(labels),
                                json.dumps(opts)))
            if cur.rowcount:
                log_event(conn, "volume", "create", name, {"driver": driver})
        return self.inspect(name)

    def exists(self, name: str) -> bool:
        return self.db.one("SELECT 1 FROM volumes WHERE name=?", (name,)) is not None

    def inspect(self, name: str) -> dict[str, Any]:
        row = self.db.one("SELECT * FROM volumes WHERE name=?", (name,))
        if row is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        labels = json.loads(row["labels"])
        if row["anonymous"]:
            labels.setdefault("com.docker.volume.anonymous", "")
        return {
            "CreatedAt": row["created"], "Driver": row["driver"], "Labels": labels or None,
            "Mountpoint": str(self.path(name)), "Name": name,
            "Options": json.loads(row["options"]) or None, "Scope": "local",
        }

    def list(self) -> list[dict[str, Any]]:
        return [self.inspect(r["name"]) for r in self.db.query(
            "SELECT name FROM volumes ORDER BY name")]

    def users(self, name: str) -> list[str]:
        return [r["container_id"] for r in self.db.query(
            "SELECT container_id FROM volume_refs WHERE volume=?", (name,))]

    def is_anonymous(self, name: str) -> bool:
        row = self.db.one("SELECT anonymous FROM volumes WHERE name=?", (name,))
        return bool(row and row["anonymous"])

    def remove(self, name: str, *, force: bool = False) -> None:
        if not self.exists(name):
            if force:
                return
            raise VolumeNotFound(f"get {name}: no such volume")
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        with self.db.write() as conn:
            conn.execute("DELETE FROM volumes WHERE name=?", (name,))
            log_event(conn, "volume", "destroy", name, {"driver": "local"})
        shutil.rmtree(self.root / name, ignore_errors=True)

    def prune(self, *, all_volumes: bool = False,
              labels: list[str] | None = None) -> tuple[list[str], int]:
        """Remove unused volumes: anonymous ones only unless ``all_volumes`` (Docker 23+)."""
        removed, space = [], 0
        for row in self.db.query(
                "SELECT name, anonymous, labels FROM volumes WHERE name NOT IN "
                "(SELECT volume FROM volume_refs)"):
            if not all_volumes and not row["anonymous"]:
                continue
            if labels and not _labels_match(json.loads(row["labels"]), labels):
                continue
            space += disk_usage(self.root / row["name"])
            self.remove(row["name"])
            removed.append(row["name"])
        return removed, space

    def runtime_mount(self, name: str, target: str, readonly: bool) -> Mount:
        """How a container mounts this volume."""
        row = self.db.one("SELECT options FROM volumes WHERE name=?", (name,))
        if row is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        opts = json.loads(row["options"])
        if opts.get("type") == "tmpfs":
            return Mount(target=target, kind="tmpfs", source="tmpfs", readonly=readonly,
                         options=tuple(filter(None, opts.get("o", "").split(","))),
                         flags=("nosuid", "nodev"))
        if opts.get("device"):
            return Mount(target=target, kind="bind", source=opts["device"], readonly=readonly)
        return Mount(target=target, kind="bind", source=str(self.path(name)),
                     readonly=readonly)

    def size(self, name: str) -> int:
        return disk_usage(self.root / name)


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True

