"""The short (CI) mode of the cluster fault harness: each fault of CLUSTER.md's table once, against one cluster
(etcd and three brokers on 127.0.0.11-13) shared by the module, each on a topic and a workload of its own.
scripts/torture_cluster.py runs the same faults for longer (`--kills 100`, `--repeat N`)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fault_harness as harness  # noqa: E402
from brokerproc import missing  # noqa: E402

pytest.importorskip("confluent_kafka")
pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if shutil.which("etcd") is None:
        missing("etcd is not installed (Debian package etcd-server)")
    c = harness.FaultCluster(str(tmp_path_factory.mktemp("faults"))).start()
    yield c
    c.stop()


@pytest.fixture
def root_with_nft():
    if not harness.is_root():
        missing("network partitions need root (nftables rules in the harness's own table)")
    if shutil.which("nft") is None:
        missing("nft is not installed (Debian package nftables)")


def passes(report: harness.RunReport) -> harness.RunReport:
    figures = report.figures()
    assert report.verdict.acknowledged > 0, figures
    assert report.verdict.ok, report.verdict.summary() + "\n" + "\n".join(report.verdict.examples)
    assert not figures["failures"], figures["failures"]
    return report


def known_bugs(report: harness.RunReport) -> None:
    """After the safety checks passed: a bug the harness found and the report names, shown as xfail (it passes
    once fixed: then drop this call)."""
    bugs = report.figures()["known_bugs"]
    if bugs:
        pytest.xfail("; ".join(bugs))


def test_kill_minus_nine_of_the_leader_three_times(cluster):
    report = passes(harness.run_fault(cluster, "kill-leader", repeats=3, seed=1))
    recovery = [r for res in report.results for r in res.recovery_s]
    assert max(recovery) < 5, f"clients produced again only after {max(recovery):.1f} s (goal: 5 s)"


def test_kill_minus_nine_of_the_controller(cluster):
    passes(harness.run_fault(cluster, "kill-controller"))


def test_sigstop_of_a_leader_past_its_lease(cluster):
    report = passes(harness.run_fault(cluster, "sigstop-leader", seed=2))
    answers = report.results[0].measured["produce_after_resume"]
    assert answers and all(code == harness.NOT_LEADER_OR_FOLLOWER for code in answers.values()), answers
    known_bugs(report)


def test_kill_minus_nine_of_the_group_coordinator(cluster):
    passes(harness.run_fault(cluster, "kill-coordinator"))


def test_rolling_sigterm_restart_of_every_broker(cluster):
    known_bugs(passes(harness.run_fault(cluster, "rolling-restart")))


def test_acks_1_losses_are_counted_not_hidden(cluster):
    """acks=1 under leader kills: what the old leader acknowledged and no follower had is lost, and the checker
    counts it (Kafka's documented acks=1 trade). Nothing else may go wrong: no offset holds two values on two
    replicas below the high watermark, no high watermark goes back."""
    report = harness.run_fault(cluster, "kill-leader", repeats=2, acks="1", seed=6)
    v = report.verdict
    assert v.acknowledged > 0
    assert v.ok, v.summary() + "\n" + "\n".join(v.examples)
    print(f"acks=1: {v.lost + v.moved} of {v.acknowledged} acknowledged messages lost over 2 leader kills")


def test_the_checker_fails_on_a_lost_and_a_moved_acknowledgement_and_a_high_watermark_going_back(cluster):
    """The checker can fail: fabricated acknowledgements (of a value never written; of a stored value at an offset
    that holds another one) and a high watermark sample that goes back are each counted."""
    report = passes(harness.run_fault(cluster, "kill-leader", repeats=1, seed=7, warmup_acks=100))
    workload = report.workload
    first = workload.ledger.acks[0]
    other = next(a for a in workload.ledger.acks if a.partition == first.partition and a.offset != first.offset)
    workload.ledger.acks.append(harness.Ack(b"never-written", first.partition, 10 ** 9, 0.0, 1.0))
    workload.ledger.acks.append(harness.Ack(first.value, other.partition, other.offset, 0.0, 1.0))
    workload.offset_samples.append(harness.Sample(2e9, {}, {}, {first.partition: 0}, {}, -1))
    v = harness.check(cluster, workload)
    assert (v.lost, v.moved, v.conflicting_acks) == (1, 1, 1) and v.hw_backwards >= 1 and not v.ok, v.summary()


def test_kill_minus_nine_of_the_etcd_leader(cluster):
    """One etcd member of three gone (its raft leader): nobody loses a lease, every partition goes on producing."""
    report = passes(harness.run_fault(cluster, "kill-etcd-leader", seed=8))
    assert report.results[0].measured["leases_lost"] == 0, report.figures()
    recovery = report.results[0].recovery_s
    assert max(recovery) < 5, f"a partition paused for {max(recovery):.1f} s while an etcd member was down"


def test_sigstop_of_the_etcd_leader(cluster):
    """The etcd leader frozen: its connections stay open and silent; the brokers on it move by their deadlines."""
    report = passes(harness.run_fault(cluster, "freeze-etcd-leader", seed=10))
    assert report.results[0].measured["leases_lost"] == 0, report.figures()
    recovery = report.results[0].recovery_s
    assert max(recovery) < 5, f"a partition paused for {max(recovery):.1f} s while an etcd member was frozen"


def test_etcd_stopped_and_restarted(cluster):
    """Last: when the cluster does not recover by itself, every broker is restarted."""
    report = passes(harness.run_fault(cluster, "etcd-restart"))
    answers = report.results[0].measured["produce_without_etcd"]
    assert all(code != 0 for parts in answers.values() for code in parts.values()), answers
    known_bugs(report)


# The network partitions last: a broker that rejoins slowly (a known bug, named in the report) leaves the cluster
# short of a replica for a while.

def test_leader_isolated_from_brokers_and_etcd(cluster, root_with_nft):
    report = passes(harness.run_fault(cluster, "isolate-leader", seed=3))
    assert all(code != 0 for code in report.results[0].measured["produce_to_cut_broker"].values())
    known_bugs(report)


def test_follower_isolated(cluster, root_with_nft):
    known_bugs(passes(harness.run_fault(cluster, "isolate-follower", seed=4)))


def test_leader_cut_from_etcd_only(cluster, root_with_nft):
    report = passes(harness.run_fault(cluster, "cut-from-etcd", seed=5))
    assert all(code != 0 for code in report.results[0].measured["produce_to_cut_broker"].values())
    known_bugs(report)


def test_one_way_loss_from_a_leader_to_its_followers(cluster, root_with_nft):
    """Only the leader's packets to the other brokers are dropped: its partitions stall below min.insync.replicas
    (refused, not lost), the others go on without it, and it is back in every ISR once healed."""
    report = passes(harness.run_fault(cluster, "one-way-leader-to-followers", seed=9))
    assert report.results[0].measured["back_in_isr_s"] < harness.REJOIN_S
    known_bugs(report)
