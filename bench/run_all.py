"""Run every benchmark in turn and print their figures (`make bench`). Takes a while on 2 cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["analyze.py", "diarization.py", "rules.py", "acoustic.py", "rubric.py", "redaction.py", "batch.py",
           "report.py", "workbench.py", "hotwords.py", "prescores.py", "compute_types.py"]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        if not (BENCH / name).exists():
            continue
        print(f"\n=== bench/{name}", flush=True)
        if subprocess.run([sys.executable, str(BENCH / name)], cwd=BENCH.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
