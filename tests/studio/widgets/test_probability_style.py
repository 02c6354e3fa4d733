"""The probability bands: readable without colour (underline, bold), and how p and tokens are written."""

import pytest

from ai_writer.studio.i18n import set_language
from ai_writer.studio.widgets.probability_style import (alternatives_strip, legend, percent, probability_style,
                                                          visible, with_raw)
from tests.studio.choice_stand_in import StandInLog


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")


@pytest.mark.parametrize("p, color, underline, bold", [
    (0.9, None, False, False), (0.5, None, False, False),
    (0.49, "yellow", False, False), (0.2, "yellow", False, False),
    (0.19, "dark_orange", True, False), (0.05, "dark_orange", True, False),
    (0.049, "red", True, True), (0.0, "red", True, True),
])
def test_each_band_and_what_a_monochrome_terminal_still_shows(p, color, underline, bold):
    style = probability_style(p)
    if color is None:
        assert style is None
        return
    assert style.color.name == color
    assert bool(style.underline) == underline and bool(style.bold) == bold
    assert probability_style(None) is None  # no probability known: plain


def test_the_legend_names_every_band():
    assert legend() == "≥ 50% plain · 20%–50% yellow · 5%–20% orange, underlined · < 5% red, bold underlined"


def test_percentages_raw_values_and_visible_whitespace():
    assert (percent(0.624), percent(0.004), percent(0.0)) == ("62%", "<1%", "0%")
    assert with_raw(0.62, 0.62) == "62%" and with_raw(0.62, 0.48) == "62% (raw 48%)"
    assert visible("\n \u3000\t的\x07") == "⏎␣⎵⇥的·"


def test_the_strip_names_the_written_token_first_then_its_rivals():
    log = StandInLog([[("的", 0.62, 0.48, (("的", 0.62, 0.48), ("了", 0.18, 0.18), ("\n", 0.04, 0.06),
                                            (" ", 0.0, 0.02)))]])
    assert alternatives_strip(log.choice(0, 0)) == "“的” 62% (raw 48%) · 了 18% · ⏎ 4% (raw 6%) · ␣ 0% (raw 2%)"
