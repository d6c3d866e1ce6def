"""Score a keyword configuration on a labelled corpus of inbound messages. Pure: no Flask.

A corpus is a TSV file with the columns ``expect``, ``channel``, ``language``,
``category``, ``body`` and ``note``; ``expect`` is what the message should get:
``opt_out``, ``opt_in``, ``help``, ``review`` (an admin should look at it) or ``none``.

What is measured is opt-out: precision (of the messages that opted out, how many
should have) and recall (of the messages that should opt out, how many did). A message
sent to review did not opt out, so it counts as "not an opt-out" for both; how many went
to review is reported beside them.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from webhook.consent.inbound import decide
from webhook.keywords import KeywordConfig

COLUMNS = ("expect", "channel", "language", "category", "body", "note")
OUTCOMES = ("opt_out", "opt_in", "help", "review", "none")
OVERALL = "overall"


@dataclass(frozen=True)
class Row:
    """One labelled message of the corpus."""

    expect: str
    channel: str
    language: str
    category: str
    body: str
    note: str = ""


@dataclass(frozen=True)
class Prediction:
    """What the configuration did with a row: its outcome, and the match kind or review reason."""

    row: Row
    outcome: str  # one of OUTCOMES
    detail: str = ""


@dataclass(frozen=True)
class Score:
    """Opt-out precision and recall of one category (or of the whole corpus)."""

    rows: int
    expected: int  # rows that should opt out
    predicted: int  # rows that opted out
    correct: int  # rows that should and did
    reviewed: int  # rows sent to review

    @property
    def precision(self) -> float | None:
        """None when nothing opted out (no opt-out to be wrong about)."""
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """None when nothing should opt out."""
        return self.correct / self.expected if self.expected else None


@dataclass(frozen=True)
class Report:
    """Scores per category and overall, the confusion counts, and every prediction."""

    categories: dict[str, Score]
    overall: Score
    confusion: Counter[tuple[str, str]]  # (expected, predicted) -> rows
    predictions: list[Prediction] = field(default_factory=list)

    @property
    def missed_opt_outs(self) -> list[Prediction]:
        return [p for p in self.predictions if p.row.expect == "opt_out" and p.outcome != "opt_out"]

    @property
    def false_opt_outs(self) -> list[Prediction]:
        return [p for p in self.predictions if p.outcome == "opt_out" and p.row.expect != "opt_out"]

    @property
    def false_opt_ins(self) -> list[Prediction]:
        return [p for p in self.predictions if p.outcome == "opt_in" and p.row.expect != "opt_in"]


class CorpusError(ValueError):
    """The corpus file is not a corpus: its message names the line."""


def read_corpus(path: Path | str) -> list[Row]:
    """Read a corpus TSV file (header line first). Raises CorpusError naming a bad line."""
    rows: list[Row] = []
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(header[: len(COLUMNS)]) != COLUMNS:
            raise CorpusError(f"{path}: line 1: the header must be {' '.join(COLUMNS)} (tab-separated)")
        for number, cells in enumerate(reader, start=2):
            if not any(cells):
                continue
            if len(cells) < len(COLUMNS) - 1:
                raise CorpusError(f"{path}: line {number}: expected {len(COLUMNS)} tab-separated columns, got {len(cells)}")
            row = Row(*cells[: len(COLUMNS)])
            if row.expect not in OUTCOMES:
                raise CorpusError(f"{path}: line {number}: expect {row.expect!r} is not one of {', '.join(OUTCOMES)}")
            rows.append(row)
    return rows


def predict(row: Row, config: KeywordConfig) -> Prediction:
    """Run one row through the matcher of its channel (the review queue's rule included)."""
    channel = config.channel(row.channel)
    if channel is None:
        raise CorpusError(f"channel {row.channel!r} of {row.body!r} is not in the configuration")
    decision = decide(channel, row.body)  # the service's own decision, as every dry run
    if decision.match is not None:
        return Prediction(row, decision.match.intent, decision.match.kind)
    reason = decision.review_reason
    return Prediction(row, "review", reason) if reason else Prediction(row, "none")


def _score(predictions: list[Prediction]) -> Score:
    return Score(
        rows=len(predictions),
        expected=sum(p.row.expect == "opt_out" for p in predictions),
        predicted=sum(p.outcome == "opt_out" for p in predictions),
        correct=sum(p.row.expect == "opt_out" and p.outcome == "opt_out" for p in predictions),
        reviewed=sum(p.outcome == "review" for p in predictions),
    )


def score(rows: list[Row], config: KeywordConfig) -> Report:
    """Opt-out precision and recall per category and overall, with the confusion counts."""
    predictions = [predict(row, config) for row in rows]
    by_category: dict[str, list[Prediction]] = {}
    for prediction in predictions:
        by_category.setdefault(prediction.row.category, []).append(prediction)
    return Report(
        categories={name: _score(items) for name, items in sorted(by_category.items())},
        overall=_score(predictions),
        confusion=Counter((p.row.expect, p.outcome) for p in predictions),
        predictions=predictions,
    )


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _score_line(name: str, s: Score) -> str:
    return f"| {name} | {s.rows} | {s.expected} | {s.predicted} | {_ratio(s.precision)} | {_ratio(s.recall)} | {s.reviewed} |"


def format_report(report: Report) -> str:
    """The report as Markdown tables: scores per category, the confusion counts, and the
    rows that went wrong (missed opt-outs, false opt-outs, false opt-ins)."""
    lines = [
        "| category | rows | should opt out | opted out | precision | recall | reviewed |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(_score_line(name, s) for name, s in report.categories.items()),
        _score_line(f"**{OVERALL}**", report.overall),
        "",
        "| expected \\ got | " + " | ".join(OUTCOMES) + " |",
        "|---|" + "---:|" * len(OUTCOMES),
    ]
    for expected in OUTCOMES:
        counts = [str(report.confusion.get((expected, got), 0)) for got in OUTCOMES]
        lines.append(f"| {expected} | " + " | ".join(counts) + " |")
    for title, items in (
        ("Missed opt-outs", report.missed_opt_outs),
        ("False opt-outs", report.false_opt_outs),
        ("False opt-ins", report.false_opt_ins),
    ):
        lines += ["", f"{title}: {len(items)}"]
        lines += [f"- [{p.row.category}] {p.row.channel} {p.row.body!r} -> {p.outcome} {p.detail}".rstrip() for p in items]
    return "\n".join(lines)
