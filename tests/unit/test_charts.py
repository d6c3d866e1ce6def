"""SVG charts for the admin dashboard: bars match the data, text is escaped, markup passes a strict CSP."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.web.charts import PALETTE, daily_bars, horizontal_bars, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(1)</script>"
OKABE_ITO = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"}


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == f"{SVG}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    """Data bars are the rects with a tooltip; legend swatches have none."""
    return [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]


def tooltip(rect: ET.Element) -> str:
    found = rect.find(f"{SVG}title")
    assert found is not None
    return found.text or ""


def shown(node: ET.Element) -> str:
    """The text a <text> element draws, without the tooltip <title> it may hold."""
    return (node.text or "") + "".join(child.tail or "" for child in node)


def texts(root: ET.Element) -> list[str]:
    return [shown(node) for node in root.iter(f"{SVG}text")]


def desc(root: ET.Element) -> str:
    found = root.find(f"{SVG}desc")
    assert found is not None
    return found.text or ""


def dates(count: int, start: date = date(2024, 5, 1)) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(count)]


def samples() -> list[str]:
    """One output of every kind, for the checks that apply to all of them."""
    return [
        daily_bars(dates(3), {"sms": [1, 0, 4], "whatsapp": [2, 2, 0], "email": [0, 1, 1]}, title="Unsubscribes"),
        daily_bars(dates(90), {"sms": list(range(90))}, title="Ninety days"),
        daily_bars([], {}, title="Empty"),
        horizontal_bars([("spring", 0.25), ("summer", 0.1)], title="Rates", value_format="{:.1%}"),
        horizontal_bars([], title="Empty"),
    ]


# nice_ticks


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (37, [0, 10, 20, 30, 40]),
        (40, [0, 10, 20, 30, 40]),
        (10, [0, 5, 10]),
        (7, [0, 2, 4, 6, 8]),
        (3, [0, 1, 2, 3]),
        (123_456, [0, 50_000, 100_000, 150_000]),
        (0.37, [0, 0.1, 0.2, 0.3, 0.4]),  # exact: no 0.30000000000000004
        (0.07, [0, 0.02, 0.04, 0.06, 0.08]),
    ],
)
def test_nice_ticks_are_round_and_reach_the_maximum(maximum, expected):
    assert nice_ticks(maximum) == expected


@pytest.mark.parametrize("maximum", [0, -5, math.nan, math.inf])
def test_nice_ticks_without_a_positive_maximum_give_an_axis_for_one(maximum):
    assert nice_ticks(maximum) == nice_ticks(1) == [0, 0.5, 1]


def test_nice_ticks_count_sets_the_number_of_steps():
    assert nice_ticks(37, count=2) == [0, 20, 40]
    assert nice_ticks(37, count=8) == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    assert nice_ticks(37, count=0) == nice_ticks(37, count=1) == [0, 50]


@given(st.floats(min_value=1e-9, max_value=1e15) | st.integers(min_value=1, max_value=10**9).map(float))
@settings(max_examples=500)
def test_nice_ticks_property(maximum):
    ticks = nice_ticks(maximum)
    assert 3 <= len(ticks) <= 5
    assert ticks[0] == 0 and ticks[-2] < maximum <= ticks[-1]
    step = ticks[1]
    assert all(math.isclose(b - a, step, rel_tol=1e-9) for a, b in zip(ticks, ticks[1:], strict=False))
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5))


# daily_bars


def test_daily_bars_draw_one_segment_per_non_zero_count_with_its_exact_value():
    series = {"sms": [1, 0, 4], "whatsapp": [2, 2, 0], "email": [0, 1, 1]}
    root = parse(daily_bars(dates(3), series, title="Unsubscribes"))
    drawn = bars(root)
    assert len(drawn) == sum(1 for values in series.values() for v in values if v)
    assert "2024-05-01 · sms: 1 (day total 3)" in [tooltip(rect) for rect in drawn]
    assert "2024-05-03 · sms: 4 (day total 5)" in [tooltip(rect) for rect in drawn]


def test_daily_bar_heights_are_proportional_to_the_counts():
    counts = [3, 6, 9, 12, 1]
    root = parse(daily_bars(dates(5), {"sms": counts}, title="SMS"))
    heights = [float(rect.get("height", "")) for rect in bars(root)]
    assert len(heights) == len(counts)
    for count, height in zip(counts, heights, strict=True):
        assert height == pytest.approx(heights[0] * count / counts[0], abs=0.02)
    bottoms = {round(float(rect.get("y", "")) + float(rect.get("height", "")), 1) for rect in bars(root)}
    assert len(bottoms) == 1  # all stand on the same baseline


def test_daily_bars_stack_segments_of_one_day_on_top_of_each_other():
    root = parse(daily_bars(dates(1), {"sms": [3], "whatsapp": [1], "email": [2]}, title="Stacked"))
    drawn = bars(root)
    assert [tooltip(rect).split(":")[0] for rect in drawn] == ["2024-05-01 · sms", "2024-05-01 · whatsapp", "2024-05-01 · email"]
    assert len({rect.get("x") for rect in drawn}) == 1
    for lower, upper in zip(drawn, drawn[1:], strict=False):
        assert float(upper.get("y", "")) + float(upper.get("height", "")) == pytest.approx(float(lower.get("y", "")), abs=0.02)
    heights = [float(rect.get("height", "")) for rect in drawn]
    assert heights[0] == pytest.approx(3 * heights[1], abs=0.02) and heights[2] == pytest.approx(2 * heights[1], abs=0.02)


def test_daily_bars_colour_each_series_distinctly_and_the_legend_names_them():
    series = {"sms": [1, 1], "whatsapp": [1, 1], "email": [1, 1]}
    root = parse(daily_bars(dates(2), series, title="Colours"))
    by_series: dict[str, set[str]] = {}
    for rect in bars(root):
        by_series.setdefault(tooltip(rect).split(" · ")[1].split(":")[0], set()).add(rect.get("fill", ""))
    assert all(len(fills) == 1 for fills in by_series.values())
    colours = [fills.pop() for fills in by_series.values()]
    assert len(set(colours)) == 3 and set(colours) <= OKABE_ITO
    swatches = [rect.get("fill") for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is None]
    assert swatches == colours
    assert {"sms", "whatsapp", "email"} <= set(texts(root))


def test_daily_bars_y_axis_has_three_to_five_round_ticks_above_the_tallest_day():
    root = parse(daily_bars(dates(2), {"sms": [30, 5], "whatsapp": [7, 0]}, title="Axis"))
    assert [t for t in texts(root) if t.isdigit()] == ["0", "10", "20", "30", "40"]


def test_daily_bars_of_small_counts_have_whole_number_ticks():
    root = parse(daily_bars(dates(2), {"sms": [1, 0]}, title="One"))
    assert [t for t in texts(root) if t.replace(".", "").isdigit()] == ["0", "1", "2"]


def test_daily_bars_thin_out_date_labels_and_show_the_year_once():
    root = parse(daily_bars(dates(90), {"sms": [1] * 90}, title="Quarter"))
    labels = [t for t in texts(root) if "-" in t]
    assert 5 <= len(labels) <= 10
    assert labels[0] == "2024-05-01" and all(len(label) == 5 for label in labels[1:])
    assert len(bars(root)) == 90


def test_daily_bars_show_the_year_again_where_it_changes():
    root = parse(daily_bars(dates(4, date(2024, 12, 30)), {"sms": [1, 2, 3, 4]}, title="New year"))
    assert [t for t in texts(root) if "-" in t] == ["2024-12-30", "12-31", "2025-01-01", "01-02"]


def test_daily_bars_desc_summarises_the_data_in_words():
    root = parse(daily_bars(dates(3), {"sms": [1, 0, 4], "whatsapp": [2, 2, 0]}, title="Unsubscribes"))
    assert desc(root) == (
        "Daily stacked bar chart, 2024-05-01 to 2024-05-03 (3 days). Total 9: sms 5, whatsapp 4. Busiest day 2024-05-03 with 4."
    )


def test_daily_bars_refuse_series_not_aligned_with_the_days():
    with pytest.raises(ValueError, match="whatsapp"):
        daily_bars(dates(3), {"sms": [1, 2, 3], "whatsapp": [1, 2]}, title="Bad")


@pytest.mark.parametrize(
    ("days", "series"),
    [([], {}), (dates(3), {}), ([], {"sms": []})],
    ids=["nothing", "no-series", "no-days"],
)
def test_daily_bars_without_data_say_so(days, series):
    root = parse(daily_bars(days, series, title="Empty"))
    assert texts(root) == ["No data in this period"]
    assert not bars(root)
    assert desc(root) == "No data in this period."


def test_daily_bars_of_a_single_zero_draw_an_axis_and_no_bar():
    root = parse(daily_bars(dates(1), {"sms": [0]}, title="Zero"))
    assert not bars(root)
    assert "0" in texts(root) and "2024-05-01" in texts(root)
    assert desc(root).startswith("Daily stacked bar chart, 2024-05-01 (1 day). Total 0: sms 0.")


# horizontal_bars


def test_horizontal_bars_keep_the_given_order_and_proportional_widths():
    rows = [("worst", 0.4), ("middle", 0.1), ("best", 0.05), ("none", 0.0)]
    root = parse(horizontal_bars(rows, title="Rates", value_format="{:.1%}"))
    drawn = bars(root)
    assert [tooltip(rect) for rect in drawn] == ["worst: 40.0%", "middle: 10.0%", "best: 5.0%", "none: 0.0%"]
    ys = [float(rect.get("y", "")) for rect in drawn]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    widths = [float(rect.get("width", "")) for rect in drawn]
    for (_, value), width in zip(rows, widths, strict=True):
        assert width == pytest.approx(widths[0] * value / rows[0][1], abs=0.02)
    assert {rect.get("x") for rect in drawn} == {drawn[0].get("x")}
    assert ["worst", "40.0%", "middle", "10.0%"] == texts(root)[:4]


def test_horizontal_bars_put_the_value_just_past_the_end_of_its_bar():
    root = parse(horizontal_bars([("a", 30), ("b", 10)], title="Counts"))
    value_nodes = [node for node in root.iter(f"{SVG}text") if node.text in {"30", "10"}]
    for rect, node in zip(bars(root), value_nodes, strict=True):
        end = float(rect.get("x", "")) + float(rect.get("width", ""))
        assert 0 < float(node.get("x", "")) - end < 10
        assert node.get("text-anchor") in (None, "start")


def test_horizontal_bars_drop_rows_past_max_rows_and_say_how_many():
    rows = [(f"campaign-{i}", float(20 - i)) for i in range(20)]
    root = parse(horizontal_bars(rows, title="Campaigns"))
    assert len(bars(root)) == 15
    assert tooltip(bars(root)[-1]) == "campaign-14: 6"
    assert desc(root).endswith("5 more rows were left out.")
    assert "campaign-15" not in desc(root)

    root = parse(horizontal_bars(rows[:4], title="Campaigns", max_rows=3))
    assert len(bars(root)) == 3 and desc(root).endswith("1 more row was left out.")

    root = parse(horizontal_bars(rows[:15], title="Campaigns"))
    assert "left out" not in desc(root)


def test_horizontal_bars_desc_lists_every_row_shown():
    root = parse(horizontal_bars([("spring", 0.25), ("summer", 0.1)], title="Rates", value_format="{:.1%}"))
    assert desc(root) == "Horizontal bar chart, 2 rows in this order: spring: 25.0%; summer: 10.0%."


def test_horizontal_bars_shorten_long_labels_but_keep_them_whole_in_the_tooltips():
    label = "a-very-long-campaign-identifier-from-the-crm-export"
    root = parse(horizontal_bars([(label, 3)], title="Long"))
    node = [node for node in root.iter(f"{SVG}text") if node.get("text-anchor") == "end"][0]
    assert shown(node) == label[:29] + "…"
    assert tooltip(node) == label
    assert tooltip(bars(root)[0]) == f"{label}: 3"


@pytest.mark.parametrize("rows", [[("only", 0.0)], [("a", 0.0), ("b", 0.0)], [("negative", -2.0), ("nan", math.nan)]])
def test_horizontal_bars_of_zeros_draw_empty_bars_without_dividing_by_zero(rows):
    root = parse(horizontal_bars(rows, title="Zero"))
    drawn = bars(root)
    assert len(drawn) == len(rows)
    assert all(float(rect.get("width", "")) == 0 for rect in drawn)


def test_horizontal_bars_without_rows_say_so():
    root = parse(horizontal_bars([], title="Empty"))
    assert texts(root) == ["No data in this period"] and not bars(root)
    root = parse(horizontal_bars([("a", 1)], title="None shown", max_rows=0))
    assert texts(root) == ["No data in this period"] and desc(root).endswith("1 more row was left out.")


# Escaping, CSP, accessibility, determinism


def test_text_from_data_is_escaped_everywhere():
    outputs = [
        daily_bars([EVIL], {EVIL: [1]}, title=EVIL),
        horizontal_bars([(EVIL, 1.0)], title=EVIL),
        daily_bars([], {}, title=EVIL),
    ]
    for markup in outputs:
        assert "<script" not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
        root = parse(markup)
        assert root.find(f"{SVG}title").text == EVIL  # type: ignore[union-attr]
        assert root.find(f".//{SVG}script") is None
    root = parse(outputs[0])
    assert EVIL in tooltip(bars(root)[0]) and EVIL in desc(root)
    assert "<script>alert(1)</scrip…" in texts(root)  # legend, shortened before escaping
    assert "<script>ale…" in texts(root)  # date label
    assert EVIL in texts(parse(outputs[1]))


def test_quotes_and_ampersands_stay_text():
    root = parse(horizontal_bars([('"Q&A" \'x\'', 1)], title="A & B"))
    assert texts(root)[0] == '"Q&A" \'x\''
    assert root.find(f"{SVG}title").text == "A & B"  # type: ignore[union-attr]


def test_characters_xml_cannot_hold_do_not_break_the_markup():
    root = parse(horizontal_bars([("bell\x07 nul\x00 \ud800", 1)], title="ctl\x1b"))
    assert texts(root)[0] == "bell\ufffd nul\ufffd \ufffd"


@pytest.mark.parametrize("markup", samples())
def test_markup_passes_a_strict_content_security_policy(markup):
    root = parse(markup)
    assert "style" not in markup
    for element in root.iter():
        assert element.tag not in {f"{SVG}style", f"{SVG}script", f"{SVG}foreignObject", f"{SVG}a"}
        assert "style" not in element.attrib
        assert not any(name.startswith("on") for name in element.attrib)
        for name in ("fill", "stroke"):
            if name in element.attrib:
                assert element.attrib[name].startswith("#") and len(element.attrib[name]) == 7
    assert "var(" not in markup and "url(" not in markup


@pytest.mark.parametrize("markup", samples())
def test_every_chart_is_labelled_responsive_and_has_a_tooltip_per_bar(markup):
    root = parse(markup)
    assert root.get("role") == "img"
    assert root.get("width") == "100%" and "height" not in root.attrib
    assert root.get("viewBox", "").startswith("0 0 ")
    title = root.find(f"{SVG}title")
    description = root.find(f"{SVG}desc")
    assert title is not None and description is not None and title.text and description.text
    assert root.get("aria-labelledby") == title.get("id")
    assert root.get("aria-describedby") == description.get("id")
    assert list(root)[:2] == [title, description]
    all_rects = list(root.iter(f"{SVG}rect"))
    swatches = [rect for rect in all_rects if rect not in bars(root)]
    assert all(rect.get("width") == "12" and rect.get("height") == "12" for rect in swatches)  # legend only


def test_output_is_deterministic_and_ids_differ_between_charts():
    first = daily_bars(dates(30), {"sms": list(range(30)), "whatsapp": [5] * 30}, title="A")
    assert first == daily_bars(dates(30), {"sms": list(range(30)), "whatsapp": [5] * 30}, title="A")
    second = daily_bars(dates(30), {"sms": list(range(30)), "whatsapp": [5] * 30}, title="B")
    assert parse(first).get("aria-labelledby") != parse(second).get("aria-labelledby")
    rows = [("x", 0.5), ("y", 0.25)]
    assert horizontal_bars(rows, title="R", value_format="{:.1%}") == horizontal_bars(rows, title="R", value_format="{:.1%}")


def test_palette_is_okabe_ito_without_the_pale_yellow():
    assert set(PALETTE) == OKABE_ITO and len(PALETTE) == len(set(PALETTE))
