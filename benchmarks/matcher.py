"""Matcher micro-benchmark: how long ``match`` (and ``review_reason``) take per message.

Run it from the repository root:

    .venv/bin/python benchmarks/matcher.py
    .venv/bin/python benchmarks/matcher.py --corpus tests/data/optout_corpus.tsv --loops 500

One run:

1. times, once, what a process pays the first time: reading the word lists (the first
   message that reaches the typo or stretched path) and building the keyword
   configuration (validation plus compiling every channel's index, per config version);
2. times ``match`` on every message of the corpus, each message ``--loops`` times in a row
   (perf_counter around the loop, divided by the loops), after a warm-up pass;
3. groups the messages by the path that decided them: ``keyword`` (the whole message is
   a keyword), ``phrase`` (first word, phrase or wrong number), ``typo`` (a mistyped or
   stretched keyword, or a typo sent to review), ``ordinary`` (nothing matched), and
   prints the median and 95th percentile per path, plus ``review_reason`` on the
   messages ``match`` did not match (the consent service calls both for those);
4. says whether the targets hold: median of all messages under 50 µs, typo path median
   under 200 µs, configuration build under 0.5 s. Exit status 1 when one does not.

See README.md in this folder for the numbers of a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from webhook import wordlists
from webhook.corpus import Row, read_corpus
from webhook.keywords import load_file, parse_document
from webhook.matching import ChannelIndex, match, review_reason
from webhook.settings import PACKAGED_KEYWORDS

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEDIAN_US = 50.0
TARGET_TYPO_MEDIAN_US = 200.0
TARGET_BUILD_S = 0.5
PATHS = ("keyword", "phrase", "typo", "ordinary")


def per_call_us(function, text: str, index: ChannelIndex, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        function(text, index)
    return (time.perf_counter() - start) / loops * 1e6


def path_of(text: str, index: ChannelIndex) -> str:
    found = match(text, index)
    if found is None:
        reason = review_reason(text, index) or ""
        return "typo" if "typo of" in reason else "ordinary"
    if found.kind in ("keyword", "emoji"):
        return "keyword"
    if found.kind in ("typo", "stretched"):
        return "typo"
    return "phrase"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def first_costs(keywords: Path) -> tuple[float, float]:
    """Seconds to read every word list (once per process) and median seconds to build the config."""
    start = time.perf_counter()
    for language in ("en", "fr", "es", "pt", "de"):
        wordlists.word_list(language)
    lists = time.perf_counter() - start
    document = load_file(keywords).document
    builds = []
    for _ in range(5):
        start = time.perf_counter()
        parse_document(document)
        builds.append(time.perf_counter() - start)
    return lists, statistics.median(builds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests" / "data" / "optout_corpus.tsv")
    parser.add_argument("--keywords", type=Path, default=PACKAGED_KEYWORDS)
    parser.add_argument("--loops", type=int, default=200, help="calls per message (default 200)")
    args = parser.parse_args(argv)

    lists_s, build_s = first_costs(args.keywords)
    config = load_file(args.keywords)
    rows: list[Row] = read_corpus(args.corpus)
    indexed = [(row.body, config.channels[row.channel].index) for row in rows]
    for text, index in indexed:  # warm-up: caches, word lists, branch predictors
        match(text, index)
        review_reason(text, index)

    timings: dict[str, list[float]] = {path: [] for path in PATHS}
    reviews: list[float] = []
    for text, index in indexed:
        path = path_of(text, index)
        timings[path].append(per_call_us(match, text, index, args.loops))
        if match(text, index) is None:
            reviews.append(per_call_us(review_reason, text, index, args.loops))

    every = [t for values in timings.values() for t in values]
    print(f"corpus: {args.corpus} ({len(rows)} messages), {args.loops} calls each\n")
    print("| path | messages | median µs | p95 µs |")
    print("|---|---:|---:|---:|")
    for path in PATHS:
        values = timings[path]
        if values:
            print(f"| `match`, {path} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} |")
    print(f"| `match`, all | {len(every)} | {statistics.median(every):.1f} | {percentile(every, 0.95):.1f} |")
    print(f"| `review_reason`, unmatched | {len(reviews)} | {statistics.median(reviews):.1f} | {percentile(reviews, 0.95):.1f} |")
    print(f"\nword lists read (once per process): {lists_s * 1000:.0f} ms")
    print(f"configuration build (validate + compile 3 channels, per version): {build_s * 1000:.0f} ms")

    checks = [
        ("median of all messages", statistics.median(every), TARGET_MEDIAN_US, "µs"),
        ("typo path median", statistics.median(timings["typo"]), TARGET_TYPO_MEDIAN_US, "µs"),
        ("configuration build", build_s, TARGET_BUILD_S, "s"),
    ]
    failed = False
    print()
    for name, value, target, unit in checks:
        ok = value < target
        failed |= not ok
        print(f"{name}: {value:.3g} {unit} (target < {target:g} {unit}): {'met' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
