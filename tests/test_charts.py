"""The portal's inline SVG charts (soapservice.charts): well-formed, accessible (role,
aria-label, a title per bar with its numbers), every text escaped, no script and no
external reference, bars proportional to the counts, the same bytes for the same data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from soapservice import charts
from soapservice.store.portal import Bucket

SVG = "{http://www.w3.org/2000/svg}"
START = 2_000_000_000 // 3600 * 3600.0


def _bars():
    return [charts.Bar("1h", "one", 3, 1), charts.Bar("2h", "two", 0, 0),
            charts.Bar("3h", "three", 0, 8)]


def _rects(svg, colour):
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("fill") == colour]


def test_accessible_with_a_title_per_bar():
    svg = charts.bar_chart(_bars(), label="Last 24 hours")
    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Last 24 hours: 3 succeeded, 8+1 failed".replace(
        "8+1", "9")
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles[1:] == ["one: 3 succeeded, 1 failed", "two: 0 succeeded, 0 failed",
                          "three: 0 succeeded, 8 failed"]
    assert [t.text for t in root.iter(f"{SVG}text") if t.text.endswith("h")] == [
        "1h", "2h", "3h"]


def test_bar_heights_follow_the_counts_stacked_and_side_by_side():
    for stacked in (True, False):
        svg = charts.bar_chart(_bars(), label="c", stacked=stacked)
        ok = _rects(svg, charts.SUCCEEDED_COLOUR)
        bad = _rects(svg, charts.FAILED_COLOUR)
        assert len(ok) == 1 and len(bad) == 2  # empty segments are not drawn
        heights = [float(r.get("height")) for r in (ok[0], bad[0], bad[1])]
        assert abs(heights[0] / heights[2] - 3 / 8) < 0.02
        assert abs(heights[1] / heights[2] - 1 / 8) < 0.02
        if stacked:  # the failed part sits on the succeeded one
            assert float(bad[0].get("y")) + heights[1] == float(ok[0].get("y"))
        else:
            assert float(bad[0].get("x")) > float(ok[0].get("x"))


def test_text_is_escaped_and_nothing_external():
    evil = '<script>alert(1)</script>&"\''
    svg = charts.bar_chart([charts.Bar(evil, evil, 1, 0)], label=evil)
    root = ET.fromstring(svg)  # still well-formed
    assert "<script" not in svg and root.find(f".//{SVG}script") is None
    assert evil in root.get("aria-label")
    assert any(t.text and t.text.startswith(evil) for t in root.iter(f"{SVG}title"))
    for forbidden in ("href", "url(", "<style", "<image", "<foreignObject", "on"):
        attrs = [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]
        assert not attrs
        if forbidden != "on":
            assert forbidden not in svg


def test_deterministic_empty_and_small():
    assert charts.bar_chart(_bars(), label="x") == charts.bar_chart(_bars(), label="x")
    empty = ET.fromstring(charts.bar_chart([], label="none"))
    assert empty.get("aria-label") == "none: 0 succeeded, 0 failed"
    small = charts.bar_chart(_bars(), label="x", width=96, height=24, small=True)
    assert ET.fromstring(small).find(f"{SVG}text") is None
    assert len(list(ET.fromstring(small).iter(f"{SVG}title"))) == 4


def test_bars_from_store_buckets_label_hours_and_days():
    hours = charts.hour_bars([Bucket(START, 2, 1), Bucket(START + 3600, 0, 0)])
    assert [b.label for b in hours] == ["03h", "04h"]
    assert hours[0].title == "2033-05-18 03:00-04:00 UTC"
    assert (hours[0].succeeded, hours[0].failed) == (2, 1)
    days = charts.day_bars([Bucket(START // 86400 * 86400, 5, 0)])
    assert days[0].label == "05-18" and days[0].title == "2033-05-18 (UTC)"


def test_y_axis_top_is_a_round_number():
    assert [charts._nice_max(v) for v in (0, 1, 3, 7, 11, 120, 999)] == [
        1, 1, 5, 10, 20, 200, 1000]
