"""Cluster fault harness for kafkalite (issue 16; CLUSTER.md's test table): a three-member etcd and three brokers on
loopback, idempotent acks=all producers and a committing consumer group, one fault at a time, and the checker.

    python scripts/torture_cluster.py                        # every fault once (the CI short mode's faults)
    python scripts/torture_cluster.py --kills 100            # the long run: 100 leader kills, the rest --repeat
    python scripts/torture_cluster.py --only kill-leader,sigstop-leader --repeat 5 --json out.json

Faults (etcd is three members on loopback): kill-leader, kill-controller, sigstop-leader, kill-coordinator,
rolling-restart, etcd-restart (all of etcd), kill-etcd-leader, freeze-etcd-leader (SIGSTOP), isolate-leader,
isolate-follower, cut-from-etcd, one-way-leader-to-followers (the last four need root and nft), plus an acks=1 run
of leader kills whose losses are counted (`acks1`). Power loss (brokers run under
tests/cluster_faults/power_cut_broker.py; a cut broker loses what it had not fsynced): power-cut-one, power-cut-two
(two brokers at once), power-cut-all, each under the default durability (0 lost expected), and
power-cut-two-interval / power-cut-all-interval under kafkalite.durability=interval, whose losses are counted (the
last one must lose some: the control). The power faults add the Java client as a producer (if a JDK and Maven are
there) and keyed writes to a compacted topic. Prints a table per fault (acknowledged, lost, duplicated, time until
clients produce again p50/p99, ISR changes). Exit status 0 only if every check passed. --keep keeps the work
directory with every broker's log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster_faults"))

import fault_harness as harness  # noqa: E402

# Runs of a fault under kafkalite.durability=interval, whose losses are counted, not failures.
INTERVAL_RUNS = {"power-cut-two-interval": "power-cut-two", "power-cut-all-interval": "power-cut-all"}
# etcd-restart last: when it goes wrong (see the report of issue 16) every broker has to be restarted.
ALL = ([f for f in harness.FAULTS if f != "etcd-restart"] + list(INTERVAL_RUNS) + ["acks1", "etcd-restart"])


def java_driver() -> list[str] | None:
    """The Java driver's command (tests/interop/java, built on first use), or None and a log line why not."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
    try:
        from test_java_client import _build

        command, why = _build()
    except Exception as e:  # noqa: BLE001 - a failed build leaves the Java producer out, and says so
        command, why = None, str(e)
    if command is None:
        harness.log(f"the power-loss faults run without the Java producer: {why}")
    return command


def row(fig: dict) -> str:
    p50 = "-" if fig["produce_again_p50_s"] is None else f"{fig['produce_again_p50_s']:.2f}"
    p99 = "-" if fig["produce_again_p99_s"] is None else f"{fig['produce_again_p99_s']:.2f}"
    verdict = "FAIL" if not fig["ok"] else "known bug" if fig["known_bugs"] else "pass"
    return (f"| {fig['fault']} | {fig['repeats']} | {fig['acks']} | {fig['acknowledged']} | {fig['lost']} | "
            f"{fig['duplicated']} | {p50} | {p99} | {fig['isr_changes']} | {verdict} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--kills", type=int, default=3, help="leader kills in the kill-leader run")
    parser.add_argument("--repeat", type=int, default=1, help="repeats of every other fault")
    parser.add_argument("--acks1-kills", type=int, default=3, help="leader kills in the acks=1 run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (broker logs, data)")
    parser.add_argument("--address-base", type=int, default=10,
                        help="brokers on 127.0.0.<base+1..3>, etcd on <base+11> (another base keeps clear of a "
                             "second harness run's nftables rules)")
    args = parser.parse_args()
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(sorted(unknown))}")
    if not harness.Firewall.available():
        skipped = [f for f in chosen if f in harness.NEEDS_ROOT]
        if skipped:
            harness.log(f"skipping {', '.join(skipped)}: network partitions need root and nft")
        chosen = [f for f in chosen if f not in harness.NEEDS_ROOT]
    seed = args.seed if args.seed is not None else int(time.time())
    workdir = tempfile.mkdtemp(prefix="kafkalite-torture-cluster-")
    harness.log(f"torture_cluster: {', '.join(chosen)}; {args.kills} leader kill(s), seed {seed}, work dir {workdir}")
    power = [f for f in chosen if f in harness.POWER_FAULTS or f in INTERVAL_RUNS]
    java = java_driver() if power else None
    settings = harness.POWER_SETTINGS if power else {}
    cluster = harness.FaultCluster(workdir, power_cut=bool(power), address_base=args.address_base,
                                   **settings).start()
    figures: list[dict] = []
    failures: list[str] = []
    try:
        for i, name in enumerate(chosen):
            fault, acks = ("kill-leader", "1") if name == "acks1" else (INTERVAL_RUNS.get(name, name), "all")
            repeats = args.acks1_kills if name == "acks1" else args.kills if fault == "kill-leader" else args.repeat
            extra = {}
            if name in power:
                extra = {"java": java, "compacted": True}
            if name in INTERVAL_RUNS:
                extra.update(topic_configs={"kafkalite.durability": "interval"}, allow_loss=True)
            try:
                report = harness.run_fault(cluster, fault, repeats=repeats, acks=acks, seed=seed + i, **extra)
            except Exception as e:  # noqa: BLE001 - a failed fault is reported, the others still run
                failures.append(f"{name}: {type(e).__name__}: {e}")
                harness.log(f"{name} FAILED: {e}")
                cluster.restore()
                continue
            fig = report.figures()
            fig["ok"] = report.ok
            fig["fault"] = name
            if name == "power-cut-all-interval":
                # The control: with no fsync before the acknowledgement, a cut of every broker must lose writes
                # (and then high watermarks and committed offsets go back too: that is the loss, not a failure).
                fig["ok"] = bool(fig["lost"])
                if not fig["ok"]:
                    failures.append(f"{name}: nothing acknowledged was lost; did the power cut drop anything?")
                figures.append(fig)
                continue
            figures.append(fig)
            for bug in fig["known_bugs"]:
                failures.append(f"{name}: known bug: {bug}")
            if not report.ok:
                failures.append(f"{name}: {report.verdict.summary()} {fig['failures']}\n  "
                                + "\n  ".join(report.verdict.examples[:10]))
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("| fault | repeats | acks | acknowledged | lost | duplicated | produce again p50 (s) | p99 (s) | "
          "ISR changes | checks |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fig in figures:
        print(row(fig))
    for fig in figures:
        if fig.get("compacted"):
            print(f"{fig['fault']}: {fig['compacted']}")
    for failure in failures:
        print("FAILED " + failure, file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": seed, "figures": figures, "failures": failures}, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
