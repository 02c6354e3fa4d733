"""Accepted text in the manuscript: its characters (paragraph indents added) back to their token choices."""

import pytest

from ai_writer.models.textprep import format_continuation
from ai_writer.studio.alternatives_flow import AcceptedSpan, inserted_sources
from ai_writer.studio.choice_map import ChoiceMap
from tests.studio.choice_stand_in import StandInJob, StandInLog

LOG = StandInLog([[("他笑", 0.3, 0.3, (("他笑", 0.3, 0.3), ("她", 0.2, 0.1))), ("了。", 0.6, 0.5, ()),
                   ("\n", 0.04, 0.03, (("\n", 0.04, 0.03), ("她", 0.5, 0.4))), ("门", 0.9, 0.9, ()),
                   ("\n", 0.1, 0.1, ()), ("开了", 0.01, 0.02, (("开了", 0.01, 0.02), ("关", 0.3, 0.2)))]])
TEXT = "他笑了。\n门\n开了"


@pytest.mark.parametrize("indent", ["", "　　", "  "])
def test_the_inserted_text_is_format_continuations_and_every_character_is_mapped(indent):
    choices = ChoiceMap.of_job(StandInJob(LOG), 0)
    inserted, sources = inserted_sources(TEXT, indent, choices)
    assert inserted == format_continuation(TEXT, indent)
    assert len(sources) == len(inserted)
    assert [inserted[i] for i, s in enumerate(sources) if s is not None] == list(TEXT)
    assert [s[1] for s in sources if s is not None] == list(range(len(TEXT)))
    assert "".join(c for c, s in zip(inserted, sources) if s is None) == indent * 2


def test_a_span_maps_locations_tokens_and_probabilities_across_indented_lines():
    choices = ChoiceMap.of_job(StandInJob(LOG), 0)
    inserted, sources = inserted_sources(TEXT, "　　", choices)
    span = AcceptedSpan((4, 6), 1, inserted, tuple(sources))  # accepted at line 4, column 6
    assert inserted == "他笑了。\n　　门\n　　开了"
    assert span.index_at((4, 5)) is None and span.index_at((3, 9)) is None
    assert span.index_at((4, 6)) == 0 and span.index_at((4, 10)) == 4  # the line break after 。
    assert span.index_at((5, 0)) == 5 and span.index_at((5, 2)) == 7 and span.index_at((6, 3)) == 12
    assert span.index_at((6, 4)) is None and span.index_at((7, 0)) is None  # the end: no character there
    for index in range(len(inserted) + 1):
        location = span.location_of(index)
        assert index == len(inserted) or span.index_at(location) == index
    assert span.location_of(len(inserted)) == (6, 4)
    assert span.probabilities() == [0.3, 0.3, 0.6, 0.6, 0.04, None, None, 0.9, 0.1, None, None, 0.01, 0.01]
    assert span.choice_at(5) is None  # an indent the studio added
    start, choice = span.choice_at(1)  # 笑: the token 他笑 starts at 0
    assert (start, choice.text) == (0, "他笑")
    start, choice = span.choice_at(12)
    assert (start, choice.text, [a.text for a in choice.alternatives]) == (11, "开了", ["开了", "关"])
    assert span.choice_at(4)[1].text == "\n"
