"""Rule engine throughput on one core: the prefiltered fast path vs every regex on every line.

Runs the kernel-log corpus (../shared/corpus from the project root), replicated to
--lines lines, through both and prints lines/s for each and the ratio. Both run in the
same process on the same lines, so the ratio holds across machines even if the absolute
figures do not. Time is the process's CPU time, so other load on the machine does not
count against the engine (wall time would measure the scheduler as well).

    python bench/bench_rules.py [--lines 1000000] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.kmsg.record import KmsgRecord, parse_line  # noqa: E402
from agent.kmsg.rules import RuleMatch, load_rules  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "kernel-log-corpus.txt"


def corpus_texts(path: Path) -> list[str]:
    """Kernel messages of the corpus as the rules see them (prefixes already stripped)."""
    texts = []
    for line in path.read_bytes().splitlines():
        if line.startswith((b"#", b"## NOTE:")) or not line.strip():
            continue
        record = parse_line(line)
        if isinstance(record, KmsgRecord):
            texts.append(record.text)
    return texts


def lines_per_second(match: Callable[[str], list[RuleMatch]], texts: list[str]) -> float:
    start = time.process_time()
    for text in texts:
        match(text)
    return len(texts) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    base = corpus_texts(args.corpus)
    texts = (base * (args.lines // len(base) + 1))[: args.lines]
    rules = load_rules()
    sample = base * 3
    if [[m.rule.name for m in rules.match(t)] for t in sample] != [
        [m.rule.name for m in rules.match_naive(t)] for t in sample
    ]:
        raise SystemExit("fast path and naive baseline disagree: not benchmarking")
    print(f"{len(rules.rules)} rules, {len(texts):,} lines ({len(base)} distinct corpus lines)")
    fast = lines_per_second(rules.match, texts)
    print(f"fast path:  {fast:>12,.0f} lines/s")
    naive = lines_per_second(rules.match_naive, texts)
    print(f"naive:      {naive:>12,.0f} lines/s")
    print(f"ratio:      {fast / naive:>12.1f}x")


if __name__ == "__main__":
    main()
