"""Fault harness for kafkalite (docs/reliability.md R1, R4, R5, R6, plus the protocol fuzzer).

    python scripts/torture.py --short          # the bounded CI mode (about 3 minutes)
    python scripts/torture.py --minutes 10     # a long run: the time is shared among the tests
    python scripts/torture.py --only R1,fuzz --minutes 5 --json out.json

Tests: R1 (kill -9 every 1-10 s during idempotent acks=all produce over 8 partitions), R4 (SIGSTOP past
the client timeouts, SIGCONT), R5 (full disk on a small tmpfs, EIO and EROFS via the file seam, a
read-only data dir at start-up), R6 (kill -9 group members, one then all), fuzz (random and mutated
frames and every malformed case), slow (a client that never reads its Fetch responses), idle (1,000
idle connections). Exit status 0 only if every check passed. Needs root for the tmpfs mounts of R5
(without it, R5 simulates the full disk with the file seam).
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
sys.path.insert(0, os.path.join(ROOT, "tests", "reliability"))

import harness  # noqa: E402

ALL = ["R1", "R4", "R5", "R6", "fuzz", "slow", "idle"]
# Share of a long run's time per test (R5, slow and idle take what they take).
SHARE = {"R1": 0.45, "R4": 0.2, "R6": 0.1, "fuzz": 0.25}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None, help="long run of about this many minutes")
    parser.add_argument("--short", action="store_true", help="the bounded CI mode (the default)")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown test(s) {', '.join(sorted(unknown))}")
    seed = args.seed if args.seed is not None else int(time.time())
    long_run = args.minutes is not None and not args.short
    budget = (args.minutes or 0) * 60
    workdir = tempfile.mkdtemp(prefix="kafkalite-torture-")
    harness.log(f"torture: {'long run of ' + str(args.minutes) + ' min' if long_run else 'short mode'}, "
                f"seed {seed}, work dir {workdir}")
    figures: dict = {"seed": seed, "mode": "long" if long_run else "short", "minutes": args.minutes}
    failures: list[str] = []
    started = time.monotonic()

    def seconds(name: str, short: float) -> float:
        return max(short, budget * SHARE[name]) if long_run else short

    try:
        for name in chosen:
            try:
                if name == "R1":
                    r = harness.run_kill_test(workdir, seconds("R1", 40),
                                              interval=(1, 10) if long_run else (1, 5), seed=seed)
                elif name == "R4":
                    r = harness.run_stop_test(workdir, seconds("R4", 20), stop_for=5, seed=seed)
                elif name == "R5":
                    r = harness.run_storage_test(workdir, hold=3 if long_run else 1.5)
                elif name == "R6":
                    r = harness.run_group_test(workdir, seconds("R6", 15))
                elif name == "fuzz":
                    r = harness.run_fuzz(workdir, seconds("fuzz", 30), seed=seed)
                    figures[name] = {"cases": r.cases, "closed": r.closed, "answered": r.answered,
                                     "peak_rss_mb": r.peak_rss_kb // 1024, "by_kind": dict(r.by_kind)}
                    harness.log(r.line())
                    continue
                elif name == "slow":
                    figures[name] = harness.run_slow_reader(workdir)
                    harness.log(f"slow reader: {figures[name]}")
                    continue
                else:
                    figures[name] = harness.run_idle_connections(workdir)
                    harness.log(f"idle connections: {figures[name]}")
                    continue
                v = r.verdict
                figures[name] = {"faults": r.faults, "seconds": round(r.seconds), "acknowledged": v.acknowledged,
                                 "stored": v.stored, "missing": v.missing, "duplicates": v.duplicates,
                                 "moved": v.moved, "order_violations": v.order_violations, "gaps": v.gaps,
                                 "notes": r.notes}
                harness.log(r.line())
                if not v.ok:
                    failures.append(f"{name}: {v.summary()}\n  " + "\n  ".join(v.examples[:10]))
            except Exception as e:  # noqa: BLE001 - a failed test is reported, the others still run
                failures.append(f"{name}: {type(e).__name__}: {e}")
                harness.log(f"{name} FAILED: {e}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    totals = {
        "acknowledged": sum(f.get("acknowledged", 0) for f in figures.values() if isinstance(f, dict)),
        "broker_kills_and_stops": sum(f.get("faults", 0) for f in figures.values() if isinstance(f, dict)),
        "lost": sum(f.get("missing", 0) + f.get("moved", 0) for f in figures.values() if isinstance(f, dict)),
        "duplicated": sum(f.get("duplicates", 0) for f in figures.values() if isinstance(f, dict)),
        "fuzz_cases": figures.get("fuzz", {}).get("cases", 0),
        "seconds": round(time.monotonic() - started),
        "failures": failures,
    }
    figures["totals"] = totals
    harness.log("totals: " + json.dumps({k: v for k, v in totals.items() if k != "failures"}))
    for failure in failures:
        print("FAILED " + failure, file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
