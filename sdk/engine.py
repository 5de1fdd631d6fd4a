"""``Engine``: opens the state under a data root and wires the services.

Embedded by default: a script, the CLI or an Ansible module opens the state and
works without any daemon.  Services are created on first use, so a command only pays
for what it touches.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdk.errors import ConfigError, FailedPrecondition

if TYPE_CHECKING:
    from sdk.config import DaemonConfig
    from sdk.containers.service import ContainerService
    from sdk.content.store import ContentStore
    from sdk.images.service import ImageService
    from sdk.models.containers import ContainerCollection
    from sdk.models.images import ImageCollection
    from sdk.models.networks import NetworkCollection
    from sdk.models.volumes import VolumeCollection
    from sdk.registry.service import RegistryService
    from sdk.remote import RemoteEngine
    from sdk.snapshots.layers import LayerStore
    from sdk.store.db import Database
    from sdk.tasks.service import TaskService
    from sdk.volumes.service import VolumeService

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_CONFIG = "/etc/berth/daemon.json"
VERSION = "0.1.0"
# the Docker Engine API version `berth daemon` serves (and its oldest accepted one)
API_VERSION = "1.43"
MIN_API_VERSION = "1.24"


class Engine:
    """The container engine.  ``Engine()`` uses /var/lib/berth and /etc/berth/daemon.json."""

    def __init__(self, root: str | os.PathLike[str] | None = None,
                 config: str | os.PathLike[str] | None = None) -> None:
        from sdk.config import load_config

        self.config_path = Path(config) if config is not None else Path(DEFAULT_CONFIG)
        self.config: DaemonConfig = load_config(self.config_path)
        chosen = root if root is not None else (self.config.data_root or DEFAULT_ROOT)
        self.root = Path(chosen).absolute()
        self._root_arg = root

    @classmethod
    def from_env(cls) -> Engine | RemoteEngine:
        """Like docker-py's ``from_env``: the engine service when it is there, else
        embedded.  ``BERTH_ROOT``/``BERTH_CONFIG`` open that data root embedded;
        otherwise ``BERTH_HOST`` (``unix://`` or ``tcp://``), a ``tcp://``
        ``DOCKER_HOST`` or a reachable ``/run/berth.sock`` give a
        :class:`sdk.remote.RemoteEngine` (rules in :mod:`sdk.remote.selection`)."""
        from sdk.remote.selection import choose

        choice = choose()
        if choice.host is None:
            return cls(root=os.environ.get("BERTH_ROOT") or None,
                       config=os.environ.get("BERTH_CONFIG") or None)
        from sdk.remote import RemoteEngine

        return RemoteEngine(choice.host)

    def reopen(self) -> Engine:
        """A fresh Engine on the same state (after fork: never share a sqlite handle)."""
        return Engine(root=self.root, config=self.config_path)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()

    # ---- storage --------------------------------------------------------------------
    @cached_property
    def db(self) -> Database:
        from sdk.store.db import Database

        if os.geteuid() != 0:
            raise FailedPrecondition(
                f"berth needs root to manage containers under {self.root} "
                "(run with sudo, or use the engine service socket as a member of group berth)")
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        return Database(self.root / "berth.db")

    @cached_property
    def storage_driver(self) -> str:
        from sdk.snapshots.layers import overlay_supported

        configured = (self.config.storage_driver or "").replace("overlay2", "overlay")
        row = self.db.one("SELECT value FROM meta WHERE key='storage-driver'")
        if configured:
            if configured == "overlay":
                ok, why = overlay_supported(self.root)
                if not ok:
                    raise FailedPrecondition(
                        f"storage-driver overlay in {self.config_path} cannot work here: "
                        f"{why}; use \"storage-driver\": \"vfs\"")
            driver = configured
        elif row is not None:
            driver = str(row["value"])
        else:
            ok, _why = overlay_supported(self.root)
            driver = "overlay" if ok else "vfs"
        if row is None or row["value"] != driver:
            with self.db.write() as conn:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('storage-driver', ?)",
                             (driver,))
        return driver

    @cached_property
    def content(self) -> ContentStore:
        from sdk.content.store import ContentStore

        return ContentStore(self.root / "content")

    @cached_property
    def layer_store(self) -> LayerStore:
        from sdk.snapshots.layers import LayerStore

        return LayerStore(self.root / "storage", self.storage_driver)  # type: ignore[arg-type]

    @cached_property
    def image_store(self) -> ImageService:
        from sdk.images.service import ImageService

        return ImageService(self.db, self.content, self.layer_store, self.storage_driver,
                            registry_config=self.config)

    @cached_property
    def volume_store(self) -> VolumeService:
        from sdk.volumes.service import VolumeService

        return VolumeService(self.db, self.root)

    @cached_property
    def container_store(self) -> ContainerService:
        from sdk.containers.service import ContainerService

        return ContainerService(self.db, self.root, self, self.config.log_opts or {},
                                selinux=bool(self.config.selinux_enabled))

    @cached_property
    def tasks(self) -> TaskService:
        from sdk.tasks.service import TaskService

        return TaskService(self)

    # ---- docker-py style collections ------------------------------------------------
    @cached_property
    def containers(self) -> ContainerCollection:
        from sdk.models.containers import ContainerCollection

        return ContainerCollection(self)

    @cached_property
    def images(self) -> ImageCollection:
        from sdk.models.images import ImageCollection

        return ImageCollection(self)

    def login(self, username: str, password: str | None = None,
              registry: str | None = None) -> dict[str, str]:
        """docker-py's login: verify against the registry, then store the credentials
        (``$BERTH_AUTH_CONFIG``, else ``~/.docker/config.json``)."""
        from sdk.distribution.login import login

        login(self.image_store, registry or "docker.io", username, password or "")
        return {"Status": "Login Succeeded"}

    @cached_property
    def volumes(self) -> VolumeCollection:
        from sdk.models.volumes import VolumeCollection

        return VolumeCollection(self)

    @cached_property
    def networks(self) -> NetworkCollection:
        from sdk.models.networks import NetworkCollection

        return NetworkCollection(self)

    @cached_property
    def registry(self) -> RegistryService:
        """Serve and maintain a registry (``engine.registry.serve(addr=..., root=...)``)."""
        from sdk.registry.service import RegistryService

        return RegistryService(self)

    # ---- system ---------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        import platform

        from sdk._internal.arch import goarch

        return {"Version": VERSION, "ApiVersion": API_VERSION, "Os": "linux",
                "Arch": goarch(), "KernelVersion": platform.release(),
                "GoVersion": "", "GitCommit": "", "Components": [
                    {"Name": "Engine", "Version": VERSION,
                     "Details": {"Python": platform.python_version()}}]}

    def info(self) -> dict[str, Any]:
        import platform
        import socket

        from sdk.runtime.cgroups import detect_mode
        from sdk.snapshots.probe import fs_type

        docs = self.tasks.all()
        states = [d["State"]["Status"] for d in docs]
        mode = detect_mode()
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except OSError:
            pass
        return {
            "ID": self._engine_id(), "Containers": len(docs),
            "ContainersRunning": states.count("running"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": len(docs) - states.count("running") - states.count("paused"),
            "Images": len(self.image_store.list_ids()), "Driver": self.storage_driver,
            "DriverStatus": [["Backing Filesystem", fs_type(self.root) or "unknown"]],
            "DockerRootDir": str(self.root), "LoggingDriver": self.config.log_driver
            or "json-file", "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if str(mode) == "v2" else "1",
            "CgroupMode": str(mode), "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(), "OSType": "linux", "Architecture":
            platform.machine(), "NCPU": os.cpu_count() or 1, "MemTotal": mem,
            "Name": socket.gethostname(), "ServerVersion": VERSION,
            "SecurityOptions": ["name=seccomp,profile=builtin"] +
            (["name=selinux"] if self.config.selinux_enabled else []),
            "InsecureRegistries": list(self.config.insecure_registries or []),
            "RegistryMirrors": list(self.config.registry_mirrors or []),
            "ConfigFile": str(self.config_path), "Runtimes": {"berth": {}},
            "DefaultRuntime": "berth", "LiveRestoreEnabled": False,
        }

    def repair(self) -> list[str]:
        """Undo what crashes left behind: dead supervisors, stale cgroups, partial files."""
        from sdk.runtime.cgroups import cleanup_stale

        done = []
        docs = self.tasks.all()          # reconciles records whose supervisor died
        alive = {d["Id"] for d in docs
                 if d["State"]["Status"] in ("running", "paused", "restarting")}
        parents = {(d["HostConfig"].get("CgroupParent") or "berth").strip("/") for d in docs}
        known = {d["Id"] for d in docs}
        cdir = self.root / "containers"
        # only this engine's containers: other data roots share the parent cgroup
        mine = known | ({e.name for e in cdir.iterdir()} if cdir.is_dir() else set())
        for parent in parents | {"berth"}:
            for name in cleanup_stale(parent, alive, only=mine):
                done.append(f"cgroup {parent}/{name}")
        if cdir.is_dir():
            import shutil

            for entry in cdir.iterdir():
                if entry.name not in known:
                    self.layer_store.remove_container(entry.name)
                    shutil.rmtree(entry, ignore_errors=True)
                    done.append(f"container directory {entry.name[:12]}")
        if self.content.cleanup_ingests():
            done.append("partial downloads")
        if self.layer_store.cleanup_partial():
            done.append("partially unpacked layers")
        done += self.networks.service.repair()
        return done

    def _engine_id(self) -> str:
        row = self.db.one("SELECT value FROM meta WHERE key='engine-id'")
        if row:
            return str(row["value"])
        import uuid

        value = str(uuid.uuid4())
        with self.db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('engine-id', ?)", (value,))
        return value


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


__all__ = ["Engine", "ConfigError"]
