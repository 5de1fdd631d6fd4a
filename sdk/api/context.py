"""What every API handler needs: a warm engine per worker thread and the starter."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sdk.api.starter import Starter
from sdk.engine import Engine

T = TypeVar("T")


@dataclass
class ExecRecord:
    """One ``POST /containers/{id}/exec``: docker keeps these until the container goes."""

    id: str
    container: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0


@dataclass
class ApiContext:
    root: str | None
    config: str | None
    starter: Starter | None = None
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(64, thread_name_prefix="berth-api"))
    execs: dict[str, ExecRecord] = field(default_factory=dict)
    # containers with an attach stream waiting for their start (``docker run``)
    attaching: dict[str, int] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)

    def engine(self) -> Engine:
        """This thread's engine (SQLite connections may not cross threads)."""
        eng = getattr(self._local, "engine", None)
        if eng is None:
            eng = self._local.engine = Engine(root=self.root, config=self.config)
        return eng

    async def call(self, fn: Callable[[Engine], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: fn(self.engine()))

    async def iterate(self, make: Callable[[Engine, Callable[[], bool]], Iterable[T]],
                      depth: int = 256) -> AsyncIterator[T]:
        """The items of a blocking iterator (log records, events) made and advanced in a
        worker thread.  ``make(engine, stopped)``: ``stopped()`` turns true once the
        consumer has left, and the thread ends at its next item.  Use with
        ``contextlib.aclosing`` so that leaving early stops the thread."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(depth)
        end = object()
        stopped = False

        def produce(engine: Engine) -> None:
            try:
                for item in make(engine, lambda: stopped):
                    if stopped:
                        return
                    asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(end), loop).result()

        task = asyncio.ensure_future(self.call(produce))
        try:
            while (item := await queue.get()) is not end:
                yield item
        finally:
            stopped = True
            while not task.done():   # unblock a producer waiting on a full queue
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)
            if not task.cancelled():
                task.exception()     # an error ends the stream, as it always did

    def start(self, engine: Engine, cid: str) -> None:
        doc = engine.tasks.get(cid)
        if doc["State"]["Status"] in ("running", "restarting"):
            return
        if doc["HostConfig"].get("AutoRemove") and self.attaching.get(doc["Id"]):
            # the attached client must read the output before the record goes, so the
            # attach stream, not the supervisor, removes it (as dockerd does)
            def mark(d: dict[str, Any]) -> None:
                d["_berth"]["remove_by_attach"] = True
            engine.container_store.modify(doc["Id"], mark)
        if self.starter is None:
            engine.tasks.start(doc["Id"])
        else:
            self.starter.start(doc["Id"])

    def new_exec(self, container: str, config: dict[str, Any]) -> ExecRecord:
        record = ExecRecord(uuid.uuid4().hex + uuid.uuid4().hex, container, config)
        self.execs[record.id] = record
        return record
