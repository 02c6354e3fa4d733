"""studio/choice_map.py: characters to token choices across the kept prefix, the chosen alternative and
the branch's own log."""

from ai_writer.studio.choice_map import ChoiceMap, Chosen
from tests.studio.choice_stand_in import StandInJob, StandInLog

ALTS = (("了", 0.3, 0.2), ("着", 0.0, 0.1))
FIRST = StandInLog([[("他", 0.9, 0.8, ALTS), ("走进", 0.4, 0.5, ALTS), ("房间", 0.1, 0.3, ALTS), ("\n", 0.02, 0.01, ALTS)]])
SECOND = StandInLog([[("门", 0.7, 0.6, ()), ("外", 0.03, 0.05, ())]])


def test_one_log_row_maps_every_character_to_its_token():
    job = StandInJob()
    choices = ChoiceMap.of_job(job, 0)
    assert choices.probabilities(3) == [None, None, None]  # the log is set later (before the first Chunk)
    assert choices.choice_at(0) is None
    job.choices = FIRST
    assert choices.probabilities(6) == [0.9, 0.4, 0.4, 0.1, 0.1, 0.02]
    assert choices.probabilities(8)[6:] == [None, None]  # text beyond the log
    start, choice = choices.choice_at(4)  # 间, the second character of 房间
    assert (start, choice.text, choice.p) == (3, "房间", 0.1)
    assert choices.choice_at(7) is None


def test_a_branch_keeps_the_prefix_then_the_alternative_then_the_new_log():
    old, new = StandInJob(FIRST), StandInJob()
    chosen = Chosen("来", 0.25, 0.2, FIRST.choice(0, 2).alternatives)
    branched = ChoiceMap.of_job(old, 0).then_chosen(3, chosen, new)
    assert branched.probabilities(6) == [0.9, 0.4, 0.4, 0.25, None, None]
    new.choices = SECOND
    assert branched.probabilities(6) == [0.9, 0.4, 0.4, 0.25, 0.7, 0.03]
    assert branched.choice_at(3) == (3, chosen)
    start, choice = branched.choice_at(5)
    assert (start, choice.text, choice.p) == (5, "外", 0.03)  # the new log's character 1
    assert branched.choice_at(1)[0] == 1 and branched.choice_at(2)[1].text == "走进"
    # branching again, inside the alternative's continuation
    again = branched.then_chosen(4, Chosen("口", 0.1, 0.1), StandInJob(SECOND))
    assert again.probabilities(7) == [0.9, 0.4, 0.4, 0.25, 0.1, 0.7, 0.03]
    assert again.cut(3).probabilities(3) == [0.9, 0.4, 0.4]
