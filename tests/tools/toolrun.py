"""Running the `kafkalite` tools as real subprocesses, for the tests in this folder."""

import asyncio
import io
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from kafkalite_client import Admin, Producer
from kafkalite_client.offsets import LATEST, list_offsets
from kafkalite_client.records import TopicPartition


@dataclass
class Result:
    code: int
    out: str
    err: str
    out_bytes: bytes = b""  # stdout as written, from run_in_process


def run_in_process(*args: str, input: str | bytes = b"", bootstrap: str | None = None) -> Result:
    """`kafkalite ARGS...` run by kafkalite.cli.main in this process, with stdin, stdout and stderr of its
    own: no interpreter start, so tests of many options stay fast. The subprocess runners remain for what
    needs a process (signals, the environment, the entry points)."""
    from kafkalite.cli import main

    argv = [*args, *(["--bootstrap", bootstrap] if bootstrap else [])]
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    with tempfile.TemporaryFile() as stdin_file:
        stdin_file.write(input.encode() if isinstance(input, str) else input)
        stdin_file.seek(0)
        streams = (io.TextIOWrapper(stdin_file), io.TextIOWrapper(out, encoding="utf-8", write_through=True),
                   io.TextIOWrapper(err, encoding="utf-8", write_through=True))
        sys.stdin, sys.stdout, sys.stderr = streams
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's errors, --help and --version
            code = e.code
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            for stream in streams:
                stream.flush()
                stream.detach()  # a wrapper closes its buffer when collected
    return Result(code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace"),
                  out.getvalue())


def tool_argv(*args: str, bootstrap: str | None = None) -> list[str]:
    """`kafkalite ARGS...`. (`python -m kafkalite` serves when given only flags, so this runs the same entry
    point as the installed `kafkalite` script: kafkalite.cli.)"""
    return [sys.executable, "-m", "kafkalite.cli", *args, *(["--bootstrap", bootstrap] if bootstrap else [])]


def run_kafkalite(*args: str, input: str | bytes | None = None, bootstrap: str | None = None, timeout: float = 30,
                  env: dict | None = None) -> Result:
    """`kafkalite ARGS...` as a real subprocess; `input` as bytes gives bytes back in out and err."""
    binary = isinstance(input, bytes)
    done = subprocess.run(tool_argv(*args, bootstrap=bootstrap), input=input, capture_output=True, text=not binary,
                          timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
    return Result(done.returncode, done.stdout, done.stderr)


def run_parallel(*commands: tuple, bootstrap: str | None = None, timeout: float = 30) -> list[Result]:
    """Several independent `kafkalite` runs at once (each a tuple of arguments): interpreter start-up
    dominates a tool's run time, so running them side by side keeps the folder fast."""
    procs = [subprocess.Popen(tool_argv(*args, bootstrap=bootstrap), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for args in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(Result(proc.returncode, out, err))
    return results


def read_lines(stream, count: int, timeout: float = 30) -> list[bytes]:
    """`count` lines from a subprocess's binary pipe, failing after `timeout` instead of blocking forever."""
    fd = stream.fileno()
    lines: list[bytes] = []
    pending = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(lines) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(lines)} of {count} lines within {timeout}s: {lines + [pending]}"
            if not selector.select(left):
                continue
            chunk = os.read(fd, 65536)
            assert chunk, f"the pipe closed after {len(lines)} of {count} lines: {lines + [pending]}"
            *complete, pending = (pending + chunk).split(b"\n")
            lines += [line + b"\n" for line in complete]
    assert not pending and len(lines) == count, (lines, pending)
    return lines


def end_offsets(bootstrap: str, topic: str, partitions: int = 1) -> list[int]:
    """The topic's end offsets, asked in-process (cheaper than a tool's interpreter start)."""
    async def ask():
        async with Admin(bootstrap) as admin:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            found = await list_offsets(admin.cluster, dict.fromkeys(tps, LATEST))
            return [found[tp][0] for tp in tps]

    return asyncio.run(ask())


def wait_for(condition, timeout: float = 30, what: str = "the condition"):
    """Poll `condition()` until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.05)


def produce_records(bootstrap: str, topic: str, records: list[tuple], partition: int | None = None) -> None:
    """(key, value[, headers]) records sent in-process: for bytes a line-based tool cannot send."""
    async def send():
        async with Producer(bootstrap) as producer:
            for key, value, *headers in records:
                await producer.send(topic, value, key=key, headers=headers[0] if headers else None,
                                    partition=partition)

    asyncio.run(send())
