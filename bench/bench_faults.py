"""The randomised fault test, run longer than CI runs it: python bench/bench_faults.py [N] [SEED].

Prints how many faults ran and the docs/design.md#4-fence-before-promote verdict (one primary
per group per epoch; no promote without a demote or fence of that epoch).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    iterations = sys.argv[1] if len(sys.argv) > 1 else "200"
    seed = sys.argv[2] if len(sys.argv) > 2 else str(int(time.time()))
    env = {**os.environ, "HANGWATCH_FAULT_ITERATIONS": iterations, "HANGWATCH_FAULT_SEED": seed}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/integration/test_failover_faults.py"],
        cwd=ROOT,
        env=env,
        check=False,
    )
    verdict = "held" if result.returncode == 0 else "BROKEN (see above)"
    print(
        f"{iterations} random faults, seed {seed}, {time.monotonic() - started:.0f}s: "
        f"invariant 4 {verdict}"
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
