"""The labelled opt-out corpus (tests/data/optout_corpus.tsv) and the scoring module."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.corpus import CorpusError, Row, format_report, read_corpus, score
from webhook.keywords import load_file
from webhook.settings import PACKAGED_KEYWORDS

CORPUS = Path(__file__).parent.parent / "data" / "optout_corpus.tsv"
CONFIG = load_file(PACKAGED_KEYWORDS)
HEADER = "expect\tchannel\tlanguage\tcategory\tbody\tnote\n"


@pytest.fixture(scope="module")
def report():
    return score(read_corpus(CORPUS), CONFIG)


def test_the_corpus_is_large_and_hard(report):
    rows = read_corpus(CORPUS)
    assert len(rows) >= 650
    assert sum(row.category == "hard_negative" for row in rows) >= 280
    assert {row.expect for row in rows} == {"opt_out", "opt_in", "help", "review", "none"}


def test_shipped_keywords_never_opt_out_by_mistake(report):
    assert report.overall.precision == 1.0, format_report(report)


def test_shipped_keywords_hear_at_least_97_percent_of_opt_outs(report):
    assert report.overall.recall is not None and report.overall.recall >= 0.97, format_report(report)


def test_shipped_keywords_never_opt_in_by_mistake(report):
    assert report.false_opt_ins == []
    assert report.confusion[("opt_in", "opt_in")] == sum(row.expect == "opt_in" for row in read_corpus(CORPUS))


def test_every_hard_negative_stays_out(report):
    hard = report.categories["hard_negative"]
    assert hard.predicted == 0


# -- the module, on rows made here ---------------------------------------------------------


def rows(*specs: tuple[str, str, str]) -> list[Row]:
    return [Row(expect, "sms", "en", category, body) for expect, category, body in specs]


def test_score_counts_precision_recall_and_reviews_per_category():
    result = score(
        rows(
            ("opt_out", "keyword", "STOP"),  # right
            ("opt_out", "keyword", "blue"),  # missed
            ("none", "hard_negative", "Cancel my order"),  # reviewed: not an opt-out
            ("none", "hard_negative", "remove me"),  # wrong opt-out
            ("opt_in", "opt_in", "START"),
        ),
        CONFIG,
    )
    keyword = result.categories["keyword"]
    assert (keyword.rows, keyword.expected, keyword.predicted, keyword.correct) == (2, 2, 1, 1)
    assert (keyword.precision, keyword.recall) == (1.0, 0.5)
    hard = result.categories["hard_negative"]
    assert (hard.predicted, hard.reviewed, hard.precision, hard.recall) == (1, 1, 0.0, None)
    assert result.overall.precision == 0.5 and result.overall.recall == 0.5
    assert result.confusion[("none", "review")] == 1 and result.confusion[("none", "opt_out")] == 1
    assert [p.row.body for p in result.missed_opt_outs] == ["blue"]
    assert [p.row.body for p in result.false_opt_outs] == ["remove me"]
    assert result.false_opt_ins == []


def test_a_review_is_reported_with_its_reason():
    result = score(rows(("review", "question", "how do I stop these messages")), CONFIG)
    assert result.predictions[0].outcome == "review"
    assert result.predictions[0].detail == "asks how to stop messages"


def test_format_report_is_a_table_with_the_misses():
    text = format_report(score(rows(("opt_out", "keyword", "STOP"), ("opt_out", "typo", "blue")), CONFIG))
    assert "| category | rows | should opt out | opted out | precision | recall | reviewed |" in text
    assert "| keyword | 1 | 1 | 1 | 1.00 | 1.00 | 0 |" in text
    assert "| typo | 1 | 1 | 0 | — | 0.00 | 0 |" in text
    assert "| opt_out | 1 | 0 | 0 | 0 | 1 |" in text  # confusion row: expected opt_out
    assert "Missed opt-outs: 1\n- [typo] sms 'blue' -> none" in text


def test_read_corpus_names_a_bad_line(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text(HEADER + "opt_out\tsms\ten\tkeyword\tSTOP\tthe keyword\n\n", encoding="utf-8")
    assert read_corpus(good) == [Row("opt_out", "sms", "en", "keyword", "STOP", "the keyword")]
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "opt_out\tsms\ten\tkeyword\tSTOP\t\nmaybe\tsms\ten\tkeyword\tSTOP\t\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="line 3: expect 'maybe'"):
        read_corpus(bad)
    headless = tmp_path / "headless.tsv"
    headless.write_text("opt_out\tsms\ten\tkeyword\tSTOP\t\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="line 1: the header"):
        read_corpus(headless)


def test_an_unknown_channel_is_an_error():
    with pytest.raises(CorpusError, match="channel 'fax'"):
        score([Row("opt_out", "fax", "en", "keyword", "STOP")], CONFIG)
