"""Ctrl-C (SIGINT) stops an interactive `kafkalite produce` and a `kafkalite consume` with exit code 130, after
sending (or committing) what they had read (or printed). Each runs as a real subprocess with stdin kept open, as
on a terminal; the deadlines only catch a hang."""

import signal
import subprocess
import time

from toolrun import end_offsets, read_lines, tool_argv, wait_for

EXIT_DEADLINE = 10  # seconds: only a hang takes this long (exiting takes a fraction of a second)


def interrupt(proc: subprocess.Popen) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(EXIT_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"did not exit within {EXIT_DEADLINE}s of Ctrl-C") from None
    return code, time.monotonic() - started


def test_produce_with_stdin_open_exits_130_after_sending_what_it_read(broker, tool, topic_name):
    name = topic_name()
    tool("topics", "create", name, "--partitions", "1")
    proc = subprocess.Popen(tool_argv("produce", name, bootstrap=broker.bootstrap), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"one\ntwo\n")
        proc.stdin.flush()
        # What was typed is sent as it is typed, while stdin stays open (as a terminal's does).
        wait_for(lambda: end_offsets(broker.bootstrap, name) == [2], what="two records written")
        code, _ = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
    assert code == 130, proc.stderr.read()
    assert end_offsets(broker.bootstrap, name) == [2]


def test_consume_exits_130_and_commits_what_it_printed(broker, tool, topic_name):
    name, group = topic_name(), topic_name()
    tool("topics", "create", name, "--partitions", "2")
    tool("produce", name, "-K", ":", input="a:1\nb:2\nc:3\nd:4\n")
    grouped = subprocess.Popen(tool_argv("consume", name, "--group", group, "--from-beginning",
                                         bootstrap=broker.bootstrap), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    alone = subprocess.Popen(tool_argv("consume", name, "--offset", "beginning", bootstrap=broker.bootstrap),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert sorted(read_lines(grouped.stdout, 4)) == [b"1\n", b"2\n", b"3\n", b"4\n"]
        assert sorted(read_lines(alone.stdout, 4)) == [b"1\n", b"2\n", b"3\n", b"4\n"]
        (grouped_code, _), (alone_code, _) = interrupt(grouped), interrupt(alone)
    finally:
        for proc in (grouped, alone):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    grouped_err = grouped.stderr.read().decode()
    assert grouped_code == 130, grouped_err
    assert "Processed a total of 4 messages" in grouped_err
    assert alone_code == 130
    described = tool("groups", "describe", group)
    assert "Empty with 0 member(s)" in described.out  # it left the group
    committed = [row.split()[2] for row in described.out.splitlines()[3:]]
    assert sum(map(int, committed)) == 4


def test_consume_sigterm_still_exits_0(broker, tool, topic_name):
    name = topic_name()
    tool("topics", "create", name)
    tool("produce", name, input="x\n")
    proc = subprocess.Popen(tool_argv("consume", name, "--from-beginning", bootstrap=broker.bootstrap),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert read_lines(proc.stdout, 1) == [b"x\n"]
        proc.terminate()
        assert proc.wait(EXIT_DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_interrupt_while_waiting_for_the_broker_exits_130(tmp_path):
    """Before any graceful stop is in place (here: connecting to a broker that never answers), Ctrl-C cancels."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        bootstrap = f"127.0.0.1:{silent.getsockname()[1]}"
        proc = subprocess.Popen(tool_argv("topics", "list", bootstrap=bootstrap), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            conn, _ = silent.accept()  # it connected and now waits for ApiVersions' answer
            with conn:
                code, _ = interrupt(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 130
    assert b"Traceback" not in proc.stderr.read()


def test_nc_reading_stdin_exits_130(broker):
    """nc blocks on its socket and stdin (no event loop to hand the signal to): Ctrl-C stops it where it is."""
    proc = subprocess.Popen(tool_argv("nc", broker.bootstrap), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b'{"api": "ApiVersions", "version": 0}\n')
        proc.stdin.flush()
        assert b'"api": "ApiVersions"' in read_lines(proc.stdout, 1)[0]  # answered; now it waits for a line
        code, _ = interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
    assert code == 130
    assert b"Traceback" not in proc.stderr.read()
