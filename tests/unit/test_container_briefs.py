"""Listings read briefs, not whole records: a brief must answer every ps column and filter
exactly as the record does, and records written before briefs existed get one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sdk.cli.ps import row
from sdk.containers.service import ContainerService, brief
from sdk.models.filters import container_matches
from sdk.store.db import Database, dumps


def record(cid: str = "ab" * 32, name: str = "web") -> dict[str, Any]:
    return {
        "Id": cid, "Created": "2026-12-01T10:00:00.123456789Z", "Path": "nginx",
        "Args": ["-g", "daemon off;"], "Image": "sha256:" + "cd" * 32, "Name": f"/{name}",
        "State": {"Status": "exited", "Running": False, "Paused": False,
                  "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 0,
                  "ExitCode": 3, "Error": "", "StartedAt": "2026-12-01T10:00:01Z",
                  "FinishedAt": "2026-12-01T10:00:05Z",
                  "Health": {"Status": "unhealthy", "FailingStreak": 3, "Log": []}},
        "HostConfig": {"NetworkMode": "mynet", "CgroupParent": "", "Memory": 0,
                       "Binds": ["/srv:/srv"], "RestartPolicy": {"Name": "no"}},
        "Config": {"Image": "nginx:1.25", "Labels": {"tier": "web", "env": "prod"},
                   "Env": ["A=1"], "Cmd": ["nginx"]},
        "Mounts": [{"Type": "volume", "Name": "data", "Source": "/v/data",
                    "Destination": "/data"},
                   {"Type": "bind", "Source": "/srv", "Destination": "/srv"}],
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                                      "53/udp": None},
                            "Networks": {"mynet": {"IPAddress": "10.9.0.2"}}},
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": "/x" * 200}},
        "_berth": {"monitor": None, "rootfs": {"path": "/x"}, "stopped_by_user": True},
    }


@pytest.mark.parametrize("trunc", [True, False])
def test_every_ps_field_reads_the_same_from_a_brief(trunc: bool) -> None:
    doc, now = record(), time.time()
    assert row(brief(doc), now, trunc=trunc) == row(doc, now, trunc=trunc)


def test_row_computes_only_the_requested_columns() -> None:
    doc = record()
    assert row(doc, time.time(), trunc=True, keys=["ID", "Names"]) == \
        {"ID": doc["Id"][:12], "Names": "web"}


@pytest.mark.parametrize("filters", [
    {"label": ["tier=web"]}, {"label": ["tier=db"]}, {"volume": ["data"]},
    {"volume": ["/srv"]}, {"volume": ["nope"]}, {"exited": ["3"]}, {"exited": ["0"]},
    {"health": ["unhealthy"]}, {"status": ["exited"]}, {"name": ["we"]}, {"id": ["abab"]},
    {"ancestor": ["nginx"]},
])
def test_filters_match_a_brief_as_they_match_the_record(filters: dict[str, list[str]]) -> None:
    doc = record()
    image_ids = {"nginx": {doc["Image"]}}
    assert container_matches(brief(doc), filters, image_ids) == \
        container_matches(doc, filters, image_ids)


def test_a_brief_leaves_out_what_listings_never_read() -> None:
    b = brief(record())
    assert "GraphDriver" not in b and "Env" not in b["Config"]
    assert set(b["HostConfig"]) == {"NetworkMode", "CgroupParent"}
    assert b["_berth"] == {"monitor": None}


def test_records_without_a_brief_get_one(tmp_path: Path) -> None:
    db = Database(tmp_path / "berth.db")
    old, new = record("aa" * 32, "old"), record("bb" * 32, "new")
    with db.write() as conn:      # an old record: written before briefs existed
        conn.execute("INSERT INTO containers VALUES (?,?,?,?,?,?)",
                     (old["Id"], "old", old["Image"], 1.0, "exited", dumps(old)))
        conn.execute("INSERT INTO containers VALUES (?,?,?,?,?,?)",
                     (new["Id"], "new", new["Image"], 2.0, "exited", dumps(new)))
        conn.execute("INSERT INTO container_briefs VALUES (?,?)",
                     (new["Id"], dumps(brief(new))))
    store = ContainerService(db, tmp_path, None, {})  # type: ignore[arg-type]
    assert [b["Name"] for b in store.briefs()] == ["/new", "/old"]    # newest first
    assert db.one("SELECT count(*) AS n FROM container_briefs")["n"] == 2
    assert store.briefs()[1] == brief(old)


def test_a_change_rewrites_the_brief(tmp_path: Path) -> None:
    db = Database(tmp_path / "berth.db")
    doc = record()
    with db.write() as conn:
        conn.execute("INSERT INTO containers VALUES (?,?,?,?,?,?)",
                     (doc["Id"], "web", doc["Image"], 1.0, "exited", dumps(doc)))
    store = ContainerService(db, tmp_path, None, {})  # type: ignore[arg-type]

    def rename(d: dict[str, Any]) -> None:
        d["Name"] = "/renamed"
        d["State"]["Status"] = "running"

    store.modify(doc["Id"], rename)
    (only,) = store.briefs()
    assert only["Name"] == "/renamed" and only["State"]["Status"] == "running"
    with db.write() as conn:
        conn.execute("DELETE FROM containers WHERE id=?", (doc["Id"],))
    assert db.one("SELECT count(*) AS n FROM container_briefs")["n"] == 0   # cascades


@pytest.mark.parametrize("count", [3, 500])
def test_bulk_decoding_matches_plain_json(count: int) -> None:
    import json

    from sdk.store.db import loads_many

    texts = [dumps(record(f"{i:064x}", f"c{i}")) for i in range(count)]
    texts.append('{"lone":"\\udcff"}')        # orjson refuses lone surrogates; json does not
    assert loads_many(texts) == [json.loads(t) for t in texts]


def test_parallel_first_opens_of_a_new_database(tmp_path: Path) -> None:
    """Processes opening a database that does not exist yet, all at the same instant, all
    get a working WAL database (switching to WAL used to fail at once with "database is
    locked" in all but one)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        path = tmp_path / f"new{attempt}.db"
        go, results = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_open_and_write, args=(str(path), i, go, results))
                 for i in range(8)]
        for proc in procs:
            proc.start()
        go.set()
        outcomes = sorted(results.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join(timeout=60)
        assert outcomes == ["wal"] * 8
        assert Database(path).one("SELECT count(*) AS n FROM meta WHERE key LIKE 'k%'")["n"] == 8


def _open_and_write(path: str, i: int, go: object, results: object) -> None:
    go.wait()  # type: ignore[attr-defined]
    try:
        db = Database(Path(path))
        with db.write() as conn:
            conn.execute("INSERT INTO meta VALUES (?, ?)", (f"k{i}", str(i)))
        results.put(str(db.one("PRAGMA journal_mode")[0]))  # type: ignore[attr-defined]
        db.close()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]
