"""Engine metadata in SQLite (WAL): images, tags, layers, containers, volumes.

Every CLI process, script and Ansible module opens the same database; SQLite's
locking plus ``BEGIN IMMEDIATE`` write transactions keep concurrent writers from
corrupting anything.  Documents (container records, image configs) are stored as
JSON text beside the few columns that are queried.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    size INTEGER NOT NULL,
    top_layer TEXT,
    parent TEXT,
    manifest_digest TEXT,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
-- listings scan containers newest first: a covering index keeps the 3-4 KB records'
-- pages out of that scan
CREATE INDEX IF NOT EXISTS containers_by_created ON containers(created, id);
-- what listings (ps, the API's container list) read: a few hundred bytes of each record
-- instead of the whole inspect document (see ContainerStore.brief)
CREATE TABLE IF NOT EXISTS container_briefs (
    id TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    brief TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    created TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attrs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exits (
    id TEXT PRIMARY KEY,
    code INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS volume_refs (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    volume TEXT NOT NULL,
    PRIMARY KEY (container_id, volume)
);
CREATE INDEX IF NOT EXISTS volume_refs_volume ON volume_refs(volume);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    bridge TEXT NOT NULL DEFAULT '',
    subnet TEXT NOT NULL DEFAULT '',
    last_ip INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_leases (
    network_id TEXT NOT NULL REFERENCES networks(id),
    address TEXT NOT NULL,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    veth TEXT NOT NULL,
    names TEXT NOT NULL DEFAULT '[]',
    holder_pid INTEGER NOT NULL,
    holder_start INTEGER NOT NULL,
    PRIMARY KEY (network_id, address)
);
CREATE INDEX IF NOT EXISTS net_leases_container ON net_leases(container_id);
CREATE TABLE IF NOT EXISTS net_ports (
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    PRIMARY KEY (proto, host_ip, host_port)
);
CREATE TABLE IF NOT EXISTS image_repo_digests (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    PRIMARY KEY (image_id, repository, digest)
);
-- push: the gzip blob made once of a layer blob stored uncompressed (blob_digest), so
-- every push of it sends the same blob (sdk/distribution/compress.py)
CREATE TABLE IF NOT EXISTS compressed_blobs (
    blob_digest TEXT NOT NULL,
    compression TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (blob_digest, compression)
);
"""


def schema_version() -> str:
    """A digest of SCHEMA: any added table or index migrates existing databases
    (every statement is idempotent), with no version number to forget to bump."""
    import hashlib

    return hashlib.sha256(SCHEMA.encode()).hexdigest()[:16]


class Database:
    """A thin wrapper over one sqlite3 connection per Engine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self.conn   # noqa: B018 - open now: create the schema on first use

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, (re)opened on demand.

        Never carry an open connection across fork(): SQLite keeps lock state in
        process memory, and a child that inherits it corrupts its view of the WAL.
        Callers that fork ``close()`` first; the next use reconnects.
        """
        if self._conn is None:
            new = not self.path.exists()
            conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._conn = conn
            if new or self._version() != schema_version():
                self._migrate()
        return self._conn

    def _version(self) -> str:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.OperationalError:
            return ""
        return str(row[0]) if row else ""

    def _migrate(self) -> None:
        self._enable_wal()
        # every statement is idempotent (IF NOT EXISTS), so concurrent first opens agree
        self.conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        with self.write():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                              (schema_version(),))

    def _enable_wal(self) -> None:
        """``PRAGMA journal_mode=WAL``, retried: switching needs an exclusive lock, and
        SQLite answers "database is locked" at once, without the busy handler, while
        another process creating the same new database holds one (parallel first use)."""
        delay = 0.005
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An exclusive write transaction (BEGIN IMMEDIATE); rolled back on error."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, args).fetchone()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False)


def loads(text: str) -> Any:
    return json.loads(text)


# orjson decodes about 4x faster, but importing it costs more than decoding a few hundred
# records (it imports uuid, which imports platform): only big listings use it
BULK = 200


def loads_many(texts: list[str]) -> list[Any]:
    """``[loads(t) for t in texts]``, with orjson (when installed) for long lists."""
    if len(texts) < BULK:
        return [json.loads(t) for t in texts]
    try:
        from orjson import JSONDecodeError
        from orjson import loads as fast
    except ImportError:   # pragma: no cover - plain json is correct, just slower
        return [json.loads(t) for t in texts]
    out = []
    for text in texts:
        try:
            out.append(fast(text))
        except JSONDecodeError:   # e.g. a lone surrogate escape, which json accepts
            out.append(json.loads(text))
    return out
