"""Container records: create, resolve by name or ID prefix, rename, remove.

A record is Docker's inspect document (Config, HostConfig, State, Mounts, ...) plus a
private ``_berth`` section (rootfs layout, monitor pid).  Records never start
processes: that is ``tasks/``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sdk import events
from sdk._internal.names import generate_name, new_id, validate_name
from sdk._internal.timefmt import now_rfc3339
from sdk.errors import Conflict, ContainerNotFound, InvalidArgument, RuntimeFailure, SdkError
from sdk.store.db import Database, dumps, loads, loads_many

if TYPE_CHECKING:
    from sdk.images.service import ImageService
    from sdk.runtime.spec import Rootfs
    from sdk.snapshots.layers import LayerStore
    from sdk.volumes.service import VolumeService


class Stores(Protocol):
    """What creating and deleting records needs besides the database (the Engine).
    Reached only when needed: listing records (``ps``) must not import the image,
    layer and runtime modules."""

    @property
    def image_store(self) -> ImageService: ...
    @property
    def layer_store(self) -> LayerStore: ...
    @property
    def volume_store(self) -> VolumeService: ...
    @property
    def storage_driver(self) -> str: ...

ZERO_TIME = "0001-01-01T00:00:00Z"
HEX = frozenset("0123456789abcdef")


def initial_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The inspect document without berth's private section."""
    return {k: v for k, v in doc.items() if k != "_berth"}


def brief(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a record that listings read (ps columns and filters, the API's list,
    and ``TaskService.reconcile``), in the record's own shape, so the same code reads a
    brief or a whole record.  A fifth of the bytes to decode per container."""
    host = doc["HostConfig"]
    config = doc["Config"]
    settings = doc.get("NetworkSettings") or {}
    out = {
        "Id": doc["Id"], "Name": doc["Name"], "Created": doc["Created"],
        "Path": doc["Path"], "Args": doc.get("Args", []), "Image": doc["Image"],
        "State": doc["State"], "Mounts": doc.get("Mounts") or [],
        "Config": {"Image": config.get("Image", ""), "Labels": config.get("Labels") or {}},
        "HostConfig": {"NetworkMode": host.get("NetworkMode", ""),
                       "CgroupParent": host.get("CgroupParent", "")},
        "NetworkSettings": {"Ports": settings.get("Ports") or {},
                            "Networks": settings.get("Networks") or {}},
        "_berth": {"monitor": doc.get("_berth", {}).get("monitor")},
    }
    if "_berth_endpoint" in host:        # reconcile normalises these records
        out["HostConfig"]["_berth_endpoint"] = host["_berth_endpoint"]
    return out


def _store(conn: sqlite3.Connection, doc: Mapping[str, Any]) -> None:
    """Write a changed record and its brief in the caller's transaction."""
    conn.execute("UPDATE containers SET doc=?, status=?, name=? WHERE id=?",
                 (dumps(doc), doc["State"]["Status"], doc["Name"][1:], doc["Id"]))
    conn.execute("INSERT OR REPLACE INTO container_briefs VALUES (?,?)",
                 (doc["Id"], dumps(brief(doc))))


class ContainerService:
    def __init__(self, db: Database, root: Path, stores: Stores, log_opts: Mapping[str, str],
                 selinux: bool = False) -> None:
        self.db = db
        self.selinux = selinux
        self.root = root / "containers"
        self.stores = stores
        self.log_opts = dict(log_opts)

    @property
    def images(self) -> ImageService:
        return self.stores.image_store

    @property
    def layers(self) -> LayerStore:
        return self.stores.layer_store

    @property
    def volumes(self) -> VolumeService:
        return self.stores.volume_store

    @property
    def driver(self) -> str:
        return self.stores.storage_driver

    def dir(self, cid: str) -> Path:
        return self.root / cid

    # ---- lookup -------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        if not ref:
            raise InvalidArgument("container name or ID must not be empty")
        name = ref[1:] if ref.startswith("/") else ref
        row = self.db.one("SELECT id FROM containers WHERE id=? OR name=?", (ref, name))
        if row is not None:
            return str(row["id"])
        if set(ref) <= HEX:
            rows = self.db.query("SELECT id FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) == 1:
                return str(rows[0]["id"])
            if len(rows) > 1:
                raise Conflict(f"multiple containers found with provided prefix: {ref}")
        raise ContainerNotFound(f"No such container: {ref}")

    def get(self, ref: str) -> dict[str, Any]:
        cid = self.resolve(ref)
        row = self.db.one("SELECT doc FROM containers WHERE id=?", (cid,))
        if row is None:
            raise ContainerNotFound(f"No such container: {ref}")
        return loads(row["doc"])

    def load(self, cid: str) -> dict[str, Any] | None:
        row = self.db.one("SELECT doc FROM containers WHERE id=?", (cid,))
        return loads(row["doc"]) if row else None

    def all(self) -> list[dict[str, Any]]:
        return loads_many([r["doc"] for r in self.db.query(
            "SELECT doc FROM containers ORDER BY created DESC, rowid DESC")])

    def briefs(self) -> list[dict[str, Any]]:
        """Every record's brief (see ``brief``), newest first.  Records written before
        briefs existed get theirs now."""
        rows = self.db.query(
            "SELECT c.id, b.brief FROM containers c LEFT JOIN container_briefs b "
            "ON b.id = c.id ORDER BY c.created DESC, c.rowid DESC")
        missing = [r["id"] for r in rows if r["brief"] is None]
        made: dict[str, dict[str, Any]] = {}
        if missing:
            with self.db.write() as conn:
                for cid in missing:
                    row = conn.execute("SELECT doc FROM containers WHERE id=?",
                                       (cid,)).fetchone()
                    if row is not None:
                        made[cid] = brief(loads(row["doc"]))
                        conn.execute("INSERT OR REPLACE INTO container_briefs VALUES (?,?)",
                                     (cid, dumps(made[cid])))
        stored = iter(loads_many([r["brief"] for r in rows if r["brief"] is not None]))
        return [next(stored) if r["brief"] is not None else made[r["id"]]
                for r in rows if r["brief"] is not None or r["id"] in made]

    def names_using_image(self, image_id: str) -> list[str]:
        return [r["id"][:12] for r in self.db.query(
            "SELECT id FROM containers WHERE image_id=?", (image_id,))]

    # ---- changing -----------------------------------------------------------------
    def save(self, doc: dict[str, Any]) -> None:
        with self.db.write() as conn:
            _store(conn, doc)

    def modify(self, cid: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read-modify-write one record inside a write transaction."""
        with self.db.write() as conn:
            row = conn.execute("SELECT doc FROM containers WHERE id=?", (cid,)).fetchone()
            if row is None:
                raise ContainerNotFound(f"No such container: {cid}")
            doc = loads(row["doc"])
            before = {"State": dict(doc["State"]), "Name": doc["Name"]}
            change(doc)
            _store(conn, doc)
            events.container_transition(conn, before, doc)
            if before["Name"] != doc["Name"]:
                events.record(conn, "container", "rename", cid,
                              dict(events.container_attrs(doc), oldName=before["Name"]))
        return doc

    def create(self, image: str, command: Any = None, **kwargs: Any) -> dict[str, Any]:
        image_id = self.images.resolve(image)
        image_cfg = self.images.config(image_id).get("config") or {}
        from sdk.containers.options import build_configs

        config, host = build_configs(image, image_cfg, command, kwargs)
        name = kwargs.get("name")
        if name:
            validate_name(str(name))
            name = str(name).lstrip("/")
        self._check_bind_sources(host)
        self._check_network(host)
        process_label, mount_label = self._labels(host)
        cid = new_id()
        if not name:
            name = generate_name(lambda n: self.db.one(
                "SELECT 1 FROM containers WHERE name=?", (n,)) is not None)
        volumes_from = self._volumes_from(host.get("VolumesFrom") or [])
        path = self.dir(cid)
        created_volumes: list[str] = []
        try:
            path.mkdir(parents=True)
            os.chmod(path, 0o710)
            top = self.images.top_layer(image_id)
            rootfs = self.layers.prepare_container(cid, top)
            mounts, refs = self._resolve_mounts(config, host, volumes_from, created_volumes)
            entry = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
            doc: dict[str, Any] = {
                "Id": cid, "Created": now_rfc3339(), "Path": entry[0], "Args": entry[1:],
                "State": initial_state(), "Image": image_id,
                "ResolvConfPath": str(path / "resolv.conf"),
                "HostnamePath": str(path / "hostname"), "HostsPath": str(path / "hosts"),
                "LogPath": str(path / f"{cid}-json.log")
                if host["LogConfig"]["Type"] != "none" else "",
                "Name": "/" + name, "RestartCount": 0, "Driver": self.driver,
                "Platform": "linux", "MountLabel": mount_label, "ProcessLabel": process_label,
                "AppArmorProfile": "", "ExecIDs": None, "HostConfig": host,
                "GraphDriver": _graph(self.driver, rootfs),
                "Mounts": mounts, "Config": config,
                "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {},
                                    "SandboxKey": "", "Networks": {}},
                "_berth": {"rootfs": _rootfs_dict(rootfs), "image_ref": image,
                           "monitor": None, "stopped_by_user": False},
            }
            with self.db.write() as conn:
                conn.execute("INSERT INTO containers VALUES (?,?,?,?,?,?)",
                             (cid, name, image_id, time.time(), "created", dumps(doc)))
                conn.execute("INSERT INTO container_briefs VALUES (?,?)",
                             (cid, dumps(brief(doc))))
                events.record(conn, "container", "create", cid, events.container_attrs(doc))
                conn.executemany("INSERT OR IGNORE INTO volume_refs VALUES (?,?)",
                                 [(cid, v) for v in refs])
        except sqlite3.IntegrityError:
            self._undo_create(cid, created_volumes)
            other = self.db.one("SELECT id FROM containers WHERE name=?", (name,))
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{other["id"] if other else "?"}". You have to remove (or rename) that '
                "container to be able to reuse that name.") from None
        except BaseException:
            self._undo_create(cid, created_volumes)
            raise
        return doc

    def _undo_create(self, cid: str, volumes: list[str]) -> None:
        self.layers.remove_container(cid)
        shutil.rmtree(self.dir(cid), ignore_errors=True)
        for name in volumes:
            try:
                self.volumes.remove(name, force=True)
            except Exception:   # noqa: BLE001 - best effort rollback
                pass

    def _labels(self, host: Mapping[str, Any]) -> tuple[str, str]:
        """SELinux (process, mount) labels with MCS categories no other container has."""
        from sdk.containers.labels import container_labels

        def in_use() -> list[str]:
            return [r[0] for r in self.db.query(
                "SELECT json_extract(doc, '$.ProcessLabel') FROM containers") if r[0]]

        return container_labels(host.get("SecurityOpt") or [], enabled=self.selinux,
                                privileged=bool(host.get("Privileged")),
                                in_use=in_use() if self.selinux else ())

    def _check_network(self, host: Mapping[str, Any]) -> None:
        """A user network must exist at create (docker: "network X not found")."""
        mode = host.get("NetworkMode") or "bridge"
        if mode in ("bridge", "host", "none", "default") or mode.startswith("container:"):
            return
        if self.db.one("SELECT 1 FROM networks WHERE name=? OR id LIKE ?",
                       (mode, mode + "%")) is None:
            from sdk.errors import NetworkNotFound

            raise NetworkNotFound(f"network {mode} not found")

    def _check_bind_sources(self, host: Mapping[str, Any]) -> None:
        from sdk.containers.options import parse_volume_spec

        for bind in host.get("Binds") or []:
            spec = parse_volume_spec(bind)
            if spec["Type"] == "bind" and not os.path.exists(spec["Source"]) \
                    and spec["ReadOnly"]:
                raise InvalidArgument(
                    f"invalid mount config for type \"bind\": bind source path does not "
                    f"exist: {spec['Source']}")
        for mount in host.get("Mounts") or []:
            if mount["Type"] == "bind" and not os.path.exists(mount["Source"]):
                raise InvalidArgument(
                    f"invalid mount config for type \"bind\": bind source path does not "
                    f"exist: {mount['Source']}")

    def _volumes_from(self, refs: list[str]) -> list[dict[str, Any]]:
        out = []
        for ref in refs:
            name, _, mode = ref.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgument(f"invalid mode for --volumes-from: {ref!r}")
            other = self.get(name)
            for m in other.get("Mounts") or []:
                copy = dict(m)
                if mode:
                    copy["RW"] = mode == "rw"
                out.append(copy)
        return out

    def _resolve_mounts(self, config: dict[str, Any], host: dict[str, Any],
                        inherited: list[dict[str, Any]], created: list[str]
                        ) -> tuple[list[dict[str, Any]], list[str]]:
        """Docker's Mounts list; creates named volumes on first use and anonymous ones."""
        from sdk.containers.options import parse_mount_spec, parse_volume_spec

        by_target: dict[str, dict[str, Any]] = {}
        for m in inherited:
            by_target[m["Destination"]] = m

        def volume_mount(name: str, target: str, ro: bool, nocopy: bool,
                         anonymous: bool) -> dict[str, Any]:
            if not self.volumes.exists(name):
                self.volumes.create(name, anonymous=anonymous)
                created.append(name)
            return {"Type": "volume", "Name": name, "Source": str(self.volumes.path(name)),
                    "Destination": target, "Driver": "local", "Mode": "" if not ro else "ro",
                    "RW": not ro, "Propagation": "", "_nocopy": nocopy}

        for target in (config.get("Volumes") or {}):
            if target not in by_target:
                by_target[target] = volume_mount(new_id(), target, False, False, True)
        for bind in host.get("Binds") or []:
            spec = parse_volume_spec(bind)
            if spec["Type"] == "bind":
                src = spec["Source"]
                if not os.path.exists(src):
                    os.makedirs(src, exist_ok=True)
                by_target[spec["Target"]] = {
                    "Type": "bind", "Source": src, "Destination": spec["Target"],
                    "Mode": bind.split(":")[2] if bind.count(":") >= 2 else "",
                    "RW": not spec["ReadOnly"], "Propagation": spec["Propagation"] or
                    "rprivate"}
            else:
                by_target[spec["Target"]] = volume_mount(
                    spec["Source"], spec["Target"], spec["ReadOnly"], spec["NoCopy"], False)
        for mount in host.get("Mounts") or []:
            m = parse_mount_spec(mount)
            target = m["Target"]
            if m["Type"] == "volume":
                by_target[target] = volume_mount(
                    m["Source"] or new_id(), target, m["ReadOnly"],
                    m.get("VolumeOptions", {}).get("NoCopy", False), not m["Source"])
            elif m["Type"] == "bind":
                by_target[target] = {"Type": "bind", "Source": m["Source"],
                                     "Destination": target, "Mode": "",
                                     "RW": not m["ReadOnly"],
                                     "Propagation": m.get("BindOptions", {}).get(
                                         "Propagation") or "rprivate"}
            else:
                by_target[target] = {"Type": "tmpfs", "Source": "", "Destination": target,
                                     "Mode": "", "RW": not m["ReadOnly"], "Propagation": "",
                                     "_tmpfs": m.get("TmpfsOptions", {})}
        for target in (host.get("Tmpfs") or {}):
            by_target.pop(target, None)
        mounts = sorted(by_target.values(), key=lambda m: m["Destination"])
        refs = [m["Name"] for m in mounts if m["Type"] == "volume"]
        return mounts, refs

    def rename(self, ref: str, new_name: str) -> None:
        validate_name(new_name)
        new_name = new_name.lstrip("/")
        cid = self.resolve(ref)
        try:
            def change(doc: dict[str, Any]) -> None:
                doc["Name"] = "/" + new_name

            self.modify(cid, change)
        except sqlite3.IntegrityError:
            raise Conflict(f'Error when allocating new name: Conflict. The container name '
                           f'"/{new_name}" is already in use') from None

    def delete(self, cid: str, *, remove_volumes: bool = False) -> None:
        """Drop the record, its storage and (with ``remove_volumes``) anonymous volumes."""
        doc = self.load(cid)
        # files first: once the record is gone nothing of the container may remain, and
        # a crash in between leaves a record that a second `rm` finishes removing
        try:
            self.layers.remove_container(cid)
        except SdkError as exc:
            # docker's "dead": storage that could not go (a busy mount, say) keeps the
            # record, which can no longer start; `rm` again once the cause is gone
            if doc:
                self.modify(cid, _mark_dead)
            raise RuntimeFailure(f"unable to remove filesystem for {cid}: {exc}") from None
        shutil.rmtree(self.dir(cid), ignore_errors=True)
        with self.db.write() as conn:
            conn.execute("DELETE FROM containers WHERE id=?", (cid,))
            if doc:   # `wait --condition removed` still learns how it ended
                events.record(conn, "container", "destroy", cid, events.container_attrs(doc))
                now = time.time()
                conn.execute("DELETE FROM exits WHERE at < ?", (now - 3600,))
                conn.execute("INSERT OR REPLACE INTO exits VALUES (?,?,?)",
                             (cid, doc["State"].get("ExitCode", 0), now))
        if remove_volumes and doc:
            for m in doc.get("Mounts") or []:
                if m.get("Type") == "volume" and self.volumes.is_anonymous(m["Name"]) \
                        and not self.volumes.users(m["Name"]):
                    self.volumes.remove(m["Name"], force=True)


def _mark_dead(doc: dict[str, Any]) -> None:
    doc["State"].update(Status="dead", Dead=True, Running=False, Paused=False,
                        Restarting=False, Pid=0)


def _rootfs_dict(rootfs: Rootfs) -> dict[str, Any]:
    return {"path": rootfs.path, "lowerdirs": list(rootfs.lowerdirs),
            "upperdir": rootfs.upperdir, "workdir": rootfs.workdir, "chdir": rootfs.chdir}


def rootfs_from(doc: Mapping[str, Any]) -> Rootfs:
    from sdk.runtime.spec import Rootfs

    r = doc["_berth"]["rootfs"]
    return Rootfs(path=r["path"], lowerdirs=tuple(r["lowerdirs"]), upperdir=r["upperdir"],
                  workdir=r["workdir"], chdir=r["chdir"],
                  readonly=bool(doc["HostConfig"].get("ReadonlyRootfs")),
                  mount_label=doc.get("MountLabel", ""))


def _graph(driver: str, rootfs: Rootfs) -> dict[str, Any]:
    if driver == "overlay":
        lowers = [os.path.join(rootfs.chdir, d) for d in rootfs.lowerdirs]
        return {"Name": "overlay2", "Data": {
            "LowerDir": ":".join(lowers), "MergedDir": rootfs.path,
            "UpperDir": rootfs.upperdir, "WorkDir": rootfs.workdir}}
    return {"Name": "vfs", "Data": {"Dir": rootfs.path}}

