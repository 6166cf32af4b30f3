"""kafkalite for test suites: a real broker inside the test process, on its own thread.

    from kafkalite.testing import EmbeddedBroker

    with EmbeddedBroker(num_partitions=3) as broker:           # or: async with EmbeddedBroker() as broker
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap_servers})

The broker listens on a free loopback port and keeps its data in a temporary directory that is removed when the
`with` ends (a `data_dir` you give is kept). It runs its own event loop on its own thread, so synchronous
clients (confluent-kafka, kafka-python) work from the test's thread and async ones from the test's event loop.
Keyword arguments are broker settings by their Kafka name with `_` for `.` (`num_partitions=3` is
`num.partitions`), or pass `settings={"log.retention.ms": 1000}`. TEST_DEFAULTS are applied first.

The pytest plugin (kafkalite.testing.plugin, registered by entry point) offers the fixtures `kafka_broker`,
`kafka_broker_session` and `kafka_broker_factory`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from typing import Any

# Settings a throwaway broker starts with unless told otherwise. One __consumer_offsets partition instead of 50
# makes a start about ten times cheaper; groups start at once instead of waiting for more members; and a
# temporary data dir does not need an fsync per acknowledgement (pass kafkalite_durability="always" to test that).
TEST_DEFAULTS: dict[str, Any] = {
    "offsets.topic.num.partitions": 1,
    "group.initial.rebalance.delay.ms": 0,
    "kafkalite.durability": "never",
}


def setting_name(keyword: str) -> str:
    """A keyword argument as a Kafka setting name: num_partitions is num.partitions."""
    return keyword.replace("_", ".")


class EmbeddedBroker:
    """A kafkalite broker on a free loopback port, run on a thread of its own (see the module's docstring).

    start() / stop() may be called more than once: a restart keeps the data dir and the port. close() stops it
    and removes a temporary data dir; the context managers call start() and close()."""

    def __init__(self, data_dir: str | None = None, *, host: str = "127.0.0.1", port: int = 0, node_id: int = 0,
                 settings: dict[str, Any] | None = None, start_timeout: float = 30.0, **keyword_settings: Any):
        from kafkalite.config import BrokerConfig  # small; the broker itself is imported by start()

        self.config = BrokerConfig(listen_host=host, listen_port=port, node_id=node_id)
        self.data_dir = data_dir
        self._owns_data_dir = data_dir is None
        self.start_timeout = start_timeout
        merged = {**TEST_DEFAULTS, **(settings or {}), **{setting_name(k): v for k, v in keyword_settings.items()}}
        for name, value in merged.items():
            self.config.set(name, value)  # a wrong name or value fails here, in the test that gave it
        self._server = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> "EmbeddedBroker":
        """Start the broker and return once it listens. Raises kafkalite.server.StartupError if it cannot."""
        if self.running:
            return self
        from kafkalite.server import Server

        if self.data_dir is None:
            self.data_dir = tempfile.mkdtemp(prefix="kafkalite-test-")
        self.config.data_dir = self.data_dir
        loop = _new_event_loop()
        thread = threading.Thread(target=_run_loop, args=(loop,), name=f"kafkalite-broker-{id(self):x}", daemon=True)
        thread.start()
        try:
            server = asyncio.run_coroutine_threadsafe(_create_and_start(Server, self.config), loop).result(
                self.start_timeout)
        except BaseException:
            _stop_loop(loop, thread)
            raise
        self._server, self._loop, self._thread = server, loop, thread
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop the broker cleanly (requests in flight finish, logs are flushed); the data dir stays."""
        if not self.running:
            return
        server, loop, thread = self._server, self._loop, self._thread
        self._server = self._loop = self._thread = None
        try:
            asyncio.run_coroutine_threadsafe(server.stop(grace), loop).result(grace + 30)
        finally:
            _stop_loop(loop, thread)

    def restart(self) -> "EmbeddedBroker":
        """Stop and start again on the same data dir and port, as after a clean shutdown."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, then remove the data dir if it is a temporary one."""
        try:
            self.stop()
        finally:
            if self._owns_data_dir and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None

    @property
    def running(self) -> bool:
        return self._server is not None

    # ------------------------------------------------------------------ what a test needs

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        """The port it listens on (known once started; kept across restarts)."""
        return self.config.port

    @property
    def bootstrap_servers(self) -> str:
        """The "host:port" to give clients as bootstrap.servers."""
        if not self.config.port:
            raise RuntimeError("the broker has not been started; use it in a with block or call start()")
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        state = f"on {self.bootstrap_servers}" if self.running else "stopped"
        return f"<EmbeddedBroker {state}, data dir {self.data_dir}>"

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> "EmbeddedBroker":
        # In a worker thread: the caller's event loop keeps running while the broker starts.
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.close)


async def _create_and_start(server_class, config):
    # The Server is built on the broker's loop: it creates asyncio objects that belong to the loop running it.
    server = server_class(config)
    await server.start()
    return server


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency, but the broker runs without it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)

