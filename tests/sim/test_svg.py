"""The hand-written charts: round ticks, readable durations, evenly thinned points."""

from __future__ import annotations

from mem8.sim import svg


def test_a_number_axis_widens_to_round_ticks() -> None:
    axis = svg.number_axis(0.0, 7.3)
    assert (axis.low, axis.high) == (0.0, 8.0)
    assert [label for _, label in axis.ticks] == ["0", "2", "4", "6", "8"]
    assert [label for _, label in svg.number_axis(-1, 1).ticks][:3] == ["-1.0", "-0.5", "0"]


def test_an_empty_range_still_has_an_axis() -> None:
    axis = svg.number_axis(3.0, 3.0)
    assert axis.low < 3.0 < axis.high


def test_a_time_axis_ticks_round_durations_after_the_start() -> None:
    axis = svg.time_axis(1000.0, 1000.0 + 86_400)
    assert [label for _, label in axis.ticks] == ["0", "6h", "12h", "18h", "1d"]
    assert svg.duration(86_400 + 12 * 3600) == "1d12h"
    assert svg.duration(90) == "1m30s"


def test_thinning_keeps_the_ends_and_spaces_the_rest_evenly() -> None:
    points = [(float(i), 0.0) for i in range(1001)]
    kept = svg.thinned(points, 11)
    assert [x for x, _ in kept] == [float(i) for i in range(0, 1001, 100)]
    assert svg.thinned(points[:5], 11) == points[:5]


def test_a_chart_is_one_svg_element_with_its_marks() -> None:
    chart = svg.Chart("t <1>", svg.number_axis(0, 1), svg.number_axis(0, 1))
    chart.line([(0.0, 0.0), (1.0, 1.0)], "#000", "a line")
    chart.dots([(0.5, 0.5)], "#000", "dots", filled=False)
    chart.rule_x(0.5, "change")
    drawn = chart.render()
    assert drawn.startswith("<svg") and drawn.endswith("</svg>")
    assert "t &lt;1&gt;" in drawn and drawn.count("<polyline") == 1
    assert drawn.count("<circle") == 2  # the dot and its legend's swatch
