"""Run every benchmark (`make bench`) and print one results table.

Each benchmark runs in its own interpreter, as it would alone, so that one
benchmark's threads, memory or imports cannot colour another's figures. The
table printed at the end is the one in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH_DIR, PYTHON, Row, load_rows, machine_description, markdown_table

BENCHMARKS = ("dispatch_overhead.py", "http_latency.py", "queued_memory.py", "yarn_backend.py", "mesos_throughput.py",
              "slurm_overhead.py", "accounting_report.py", "console.py")
# These print their own table (their columns differ); their output passes through.
OWN_TABLES = ("mesos_placement.py", "mesos_scheduler.py")
# Long ones (stores of a million jobs, a job of 40,000 tasks on Mesos: most of an hour together), run with --long only.
LONG = ("scale.py", "big_job.py")


def run_one(script: str, quick: bool, json_path: Path | None) -> bool:
    """Run one benchmark script, its own output passing through; True if it succeeded."""
    print(f"\n## {script}", flush=True)
    argv = [PYTHON, str(BENCH_DIR / script)] + (["--json", str(json_path)] if json_path else [])
    argv += ["--quick"] if quick else []
    started = time.monotonic()
    code = subprocess.call(argv)
    print(f"({script}: {time.monotonic() - started:.0f} s, exit {code})", flush=True)
    return code == 0 and (json_path is None or json_path.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--long", action="store_true", help=f"also the long ones: {', '.join(LONG)}")
    args = parser.parse_args()
    rows: list[Row] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        for script in BENCHMARKS + (LONG if args.long else ()):
            json_path = Path(tmp) / f"{script}.json"
            if run_one(script, args.quick, json_path):
                rows += load_rows(json_path)
            else:
                failed.append(script)
        failed += [script for script in OWN_TABLES if not run_one(script, args.quick, None)]
    print(f"\n# Results {datetime.date.today().isoformat()} ({machine_description()})"
          + (" [quick]" if args.quick else "") + "\n")
    print(markdown_table(rows))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
