"""The probability view and choosing alternatives, through Pilot on the fake engine (its real ChoiceLog:
the generation service records every step; the fake engine only stands in for the model)."""

from __future__ import annotations

import pytest
from textual import events

from ai_writer.studio.dialogs.alternatives import AlternativesDialog
from ai_writer.studio.i18n import set_language
from ai_writer.studio.widgets.probability_style import probability_style, visible
from tests.studio.test_app import MANUSCRIPT, generate, make_app, ready, wait_until  # noqa: F401 (fixture)


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")


def char_styles(strip, count: int) -> list:
    """The style of each of a drawn row's first `count` characters."""
    styles = [segment.style for segment in strip for _ in segment.text]
    return styles[:count]


def assert_banded(styles, probabilities, plain_color) -> None:
    """Each character drawn in its band's colour, underline and bold (the monochrome cues)."""
    for i, (style, p) in enumerate(zip(styles, probabilities)):
        band = probability_style(p)
        if band is None:
            assert not style.underline and style.color == plain_color, (i, p, style)
        else:
            assert (style.color, bool(style.underline), bool(style.bold)) == \
                (band.color, bool(band.underline), bool(band.bold)), (i, p, style)


def percent(p: float) -> str:
    return f"{round(p * 100)}%"


async def test_f9_colours_each_candidate_character_by_its_probability_and_back(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        view, log = app.candidates.view(1), app.job.choices
        row = view.displayed_rows()[0]
        assert row == texts[1]  # one row holds it all
        probabilities = log.probabilities(1)[: len(row)]
        assert len({probability_style(p) for p in probabilities}) >= 3  # the data has several bands to show
        plain = char_styles(view.render_line(0), len(row))
        assert not any(s.underline or s.bold for s in plain)
        await pilot.press("f9")
        assert app.candidates.show_probabilities and "≥ 50% plain" in app.status.message
        shown = char_styles(view.render_line(0), len(row))
        assert_banded(shown, probabilities, plain[0].color)
        assert any(s.underline for s in shown)
        await pilot.press("f9")
        assert char_styles(view.render_line(0), len(row)) == plain
        await pilot.press("f9")
        await generate(pilot, app)  # the setting stays for the session: new candidates are coloured too
        probabilities = app.job.choices.probabilities(1)
        assert_banded(char_styles(view.render_line(0), len(probabilities)), probabilities, plain[0].color)


async def test_the_character_after_the_cut_shows_its_alternatives(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        log = app.job.choices
        app.candidates.focus()
        await pilot.press("shift+left", "shift+left", "shift+left")
        view = app.candidates.view(0)
        assert view.border_subtitle == ""  # the view is off
        await pilot.press("f9")
        choice = log.choice(0, log.step_at_char(0, 9))
        assert choice.text == texts[0][9]
        strip = view.border_subtitle
        head = f"“{choice.text}” {percent(choice.p)}"
        assert strip.startswith(head), strip
        if percent(choice.p) != percent(choice.p_raw):
            assert strip.startswith(f"{head} (raw {percent(choice.p_raw)})")
        rivals = [a for a in choice.alternatives if a.text != choice.text]
        assert len(rivals) >= 2
        for rival in rivals[:3]:
            assert f"{visible(rival.text)} {percent(rival.p)}" in strip
        marked = char_styles(view.render_line(0), len(texts[0]))
        assert marked[9].reverse and not marked[8].reverse  # the cursor: the character after the cut
        assert marked[9].strike and not marked[8].strike  # still the part the cut leaves out


async def test_choosing_an_alternative_continues_the_candidate_from_there(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        first_job = app.job
        app.candidates.focus()
        await pilot.press("f9", "shift+left", "shift+left", "shift+left", "shift+left")  # before character 8
        await pilot.press("a")
        assert await wait_until(pilot, lambda: isinstance(app.screen, AlternativesDialog))
        dialog = app.screen
        choice = first_job.choices.choice(0, 8)
        assert [c.text for c in dialog.choices] == [choice.text, *[a.text for a in choice.alternatives
                                                                    if a.text != choice.text]]
        alternative = dialog.choices[1]  # highlighted: the likeliest rival
        await pilot.press("enter")
        run = app.main.generation
        assert run.job is not first_job and run.request.n == 1
        assert run.request.text == MANUSCRIPT + texts[0][:8] + alternative.text
        assert await wait_until(pilot, lambda: run.job.done and not app.candidates.candidates[0].streaming)
        slot = app.candidates.candidates[0]
        continuation = run.job.choices.text(0)
        assert len(continuation) == 12 and slot.text == texts[0][:8] + alternative.text + continuation
        assert [c.text for c in app.candidates.candidates[1:]] == texts[1:]  # the others stay as they were
        probabilities = slot.choices.probabilities(len(slot.text))
        assert probabilities[:8] == first_job.choices.probabilities(0)[:8]
        assert probabilities[8] == alternative.p and probabilities[9:] == run.job.choices.probabilities(0)
        assert app.editor.suggestion == slot.text  # the ghost follows
        await pilot.press("enter")
        assert app.editor.text == MANUSCRIPT + slot.text


async def test_escape_closes_the_list_and_nothing_changes(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        job = app.job
        app.candidates.focus()
        await pilot.press("a")  # the cut was not moved: no character after it
        assert "move the cut" in app.status.message and not isinstance(app.screen, AlternativesDialog)
        await pilot.press("shift+left", "a")
        assert await wait_until(pilot, lambda: isinstance(app.screen, AlternativesDialog))
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, AlternativesDialog))
        assert app.job is job and [c.text for c in app.candidates.candidates] == texts


async def test_accepted_text_keeps_its_colours_and_alternatives_until_edited(make_app):
    app, path = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        log = app.job.choices
        await pilot.press("alt+1", "f9")
        accepted = app.editor.text
        assert accepted == MANUSCRIPT + texts[0]
        line = "　　他抬头望向远方，"
        editor = app.editor
        strip = editor.render_line(1)  # the manuscript's second line, the accepted text at its end
        styles = char_styles(strip, len(line) + 12)[len(line):]
        plain = char_styles(editor.render_line(0), 1)[0]
        assert_banded(styles, log.probabilities(0), plain.color)
        editor.move_cursor((1, len(line) + 5))
        await pilot.pause()
        choice = log.choice(0, 5)
        assert app.status.hint.startswith(f"“{texts[0][5]}” {percent(choice.p)}")
        assert "≥ 50%" not in app.status.message  # the legend gives way to the alternatives on the line
        assert app.status.compose_line(100)[0].plain.startswith(f"saved │ “{texts[0][5]}”")
        editor.move_cursor((1, 3))  # before the accepted text: nothing to say
        await pilot.pause()
        assert app.status.hint == ""
        editor.move_cursor((1, len(line) + 5))
        app.post_message(events.Key("alt+a", "a"))  # as a terminal sends ESC a: with its character
        assert await wait_until(pilot, lambda: isinstance(app.screen, AlternativesDialog))
        assert editor.text == accepted  # not typed into the manuscript
        alternative = app.screen.choices[1]
        await pilot.press("enter")
        replaced = MANUSCRIPT + texts[0][:5] + alternative.text
        assert editor.text == replaced and editor.cursor_location == editor.document.end
        assert app.main.generation.request.text == replaced  # new candidates from the new end
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == replaced)
        assert await wait_until(pilot, lambda: app.job.done)
        await pilot.press("ctrl+z")  # one undo step back to the accepted text, its colours with it
        assert editor.text == accepted
        editor.move_cursor((1, len(line) + 5))
        await pilot.pause()
        assert app.status.hint.startswith(f"“{texts[0][5]}”")
        editor.move_cursor(editor.document.end)
        await pilot.press("x")  # an edit: the accepted text is no longer the unedited end
        await pilot.pause()
        editor.move_cursor((1, len(line) + 5))
        await pilot.pause()
        assert app.status.hint == "" and editor._span_lines is None
        await pilot.press("alt+a")
        assert "only text accepted in this session" in app.status.message
        editor.move_cursor(editor.document.end)
        await pilot.press("backspace")  # back to the accepted text, edited to the same: still not "unedited"
        await pilot.press("ctrl+z", "ctrl+z")
        await pilot.pause()
        assert editor.text == accepted and editor._span_lines is not None


async def test_the_view_off_leaves_the_editor_unstyled(make_app):
    app, _ = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await generate(pilot, app)
        await pilot.press("alt+1")
        await pilot.pause()
        assert app.editor._span_lines is None and app.status.hint == ""
        await pilot.press("f9")
        await pilot.pause()
        assert app.editor._span_lines is not None
        await pilot.press("f9")
        await pilot.pause()
        assert app.editor._span_lines is None
        assert not any(s.underline for s in char_styles(app.editor.render_line(1), 30))


async def test_without_recorded_alternatives_the_list_says_why(make_app):
    app, _ = make_app()
    app.config = app.config.with_value("generation", "alternatives", 0)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        assert app.job.choices is None and texts[0]
        app.candidates.focus()
        await pilot.press("f9", "shift+left")
        assert app.candidates.view(0).border_subtitle == ""
        await pilot.press("a")
        assert "[generation] alternatives = 0" in app.status.message
        assert not isinstance(app.screen, AlternativesDialog)
