"""IPAM under contention: parallel processes never get the same address."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from sdk import Engine

pytestmark = pytest.mark.root


def _allocate(root: str, config: str, cids: list[str], out: multiprocessing.Queue) -> None:
    eng = Engine(root=root, config=config)
    svc = eng.networks.service
    net = svc.get("bridge")
    got = []
    for n, cid in enumerate(cids):
        with eng.db.write() as conn:
            ep = svc._lease(conn, cid, 0, net, {}, f"c{n}", os.getpid(), 0)
        got.append(str(ep.address.ip))
    eng.close()
    out.put(got)


def test_parallel_leases_are_unique(engine: Engine, busybox: str, tmp_path: Path) -> None:
    docs = [engine.container_store.create("busybox", ["true"]) for _ in range(40)]
    engine.networks.service.list()            # the builtin networks exist
    engine.close()
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_allocate, args=(str(engine.root), str(engine.config_path),
                                                 [d["Id"] for d in docs[i::4]], out))
             for i in range(4)]
    for p in procs:
        p.start()
    addresses = [a for _ in procs for a in out.get(timeout=60)]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert len(addresses) == 40 and len(set(addresses)) == 40
    rows = engine.db.one("SELECT COUNT(*) AS n FROM net_leases")["n"]
    assert rows == 40
    for d in docs:       # leases of dead holders go with the records (repair, rm)
        engine.tasks.remove(d["Id"])
    assert engine.db.one("SELECT COUNT(*) AS n FROM net_leases")["n"] == 0
