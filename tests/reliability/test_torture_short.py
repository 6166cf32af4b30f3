"""The short (CI) mode of the fault harness: RELIABILITY.md R1, R4, R5, R6, the protocol fuzzer, a client
that never reads, and 1,000 idle connections, each against a live broker. scripts/torture.py runs the
same code for longer (`--minutes N`)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

pytestmark = pytest.mark.interop


def _ok(report) -> None:
    v = report.verdict
    assert v is not None, report.line()
    assert v.ok, report.line() + "\n" + "\n".join(v.examples)
    assert v.acknowledged > 0, report.line()


def test_r1_kill_minus_nine_during_idempotent_produce(tmp_path):
    report = harness.run_kill_test(str(tmp_path), seconds=25, interval=(1, 5), seed=1)
    assert report.faults >= 4
    _ok(report)


def test_r4_sigstop_past_client_timeouts(tmp_path):
    report = harness.run_stop_test(str(tmp_path), seconds=12, stop_for=4, seed=1)
    assert report.faults >= 2
    _ok(report)


def test_r5_full_disk_eio_erofs_read_only(tmp_path):
    _ok(harness.run_storage_test(str(tmp_path), hold=1.0))


def test_r6_group_member_kills(tmp_path):
    _ok(harness.run_group_test(str(tmp_path), seconds=12))


def test_protocol_fuzzer(tmp_path):
    report = harness.run_fuzz(str(tmp_path), seconds=20, seed=1)
    assert report.cases > 1000, report.line()
    assert report.peak_rss_kb < harness.MEMORY_BOUND_KB


def test_client_that_never_reads_its_fetch_responses(tmp_path):
    result = harness.run_slow_reader(str(tmp_path), seconds=5, fill_mb=16)
    assert result["peak_rss_mb"] - result["base_rss_mb"] < 256, result


def test_a_thousand_idle_connections(tmp_path):
    result = harness.run_idle_connections(str(tmp_path), count=1000)
    assert result["served_in_s"] < 5, result
