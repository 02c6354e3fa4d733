"""The probability view and choosing alternatives, for the main screen.

- f9 (toggle): the candidates panel and the text accepted in this session coloured by probability.
- In the panel, the character just after the cut: its alternatives under the candidate; `a` lists them;
  choosing one branches: the candidate is cut there, the alternative put in, and one new candidate
  (an ordinary request after the manuscript, the kept prefix and the alternative) streams on in its slot.
- In the manuscript: text accepted here keeps its characters' choices for as long as it is the end of
  the manuscript and unedited (the editor's edit_version says so; undoing back to it brings it back).
  The character at the cursor shows its alternatives on the status line; alt+a lists them; choosing
  one replaces the manuscript from there to the end (one undo step) and asks for new candidates there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ai_writer.backends.writing.story import Story
from ai_writer.models.textprep import format_continuation, paragraph_indent
from ai_writer.studio.choice_map import ChoiceMap, Chosen, ChosenPiece
from ai_writer.studio.data.history import new_request_id
from ai_writer.studio.dialogs.alternatives import AlternativesDialog
from ai_writer.studio.generation_run import GenerationRun
from ai_writer.studio.generation_setup import build_request
from ai_writer.studio.i18n import tr
from ai_writer.studio.widgets.probability_style import alternatives_strip, legend, probability_style, visible

INDENT_LOOKBACK = 10_000  # as the main screen's insert_text reads the manuscript's paragraph indent
KEPT_SPANS = 32  # accepted spans remembered (by the edit_version they belong to), for undo and redo


def inserted_sources(text: str, indent: str, choices: ChoiceMap, first: int = 0) -> tuple[str, list]:
    """format_continuation(text, indent), and for each of its characters (choices, index in the map) or None
    for an indent it added (text's characters are the map's from `first` on)."""
    out, sources = [], []
    for k, char in enumerate(text):
        out.append(char)
        sources.append((choices, first + k))
        if char == "\n" and indent:
            out.append(indent)
            sources.extend([None] * len(indent))
    inserted = "".join(out)
    assert inserted == format_continuation(text, indent), "format_continuation changed: map it here too"
    return inserted, sources


@dataclass(frozen=True)
class AcceptedSpan:
    """Text accepted at the end of the manuscript, as it was while the editor's edit_version was `version`."""

    start: tuple[int, int]  # where it starts in the document
    version: int
    text: str  # as it stands in the document (indents added)
    sources: tuple  # each character's (ChoiceMap, index) or None

    def index_at(self, location: tuple[int, int]) -> int | None:
        """The span's character at a document location (None outside the span)."""
        row, column = location
        line = row - self.start[0]
        if line < 0:
            return None
        position = 0
        for _ in range(line):
            position = self.text.find("\n", position) + 1
            if position == 0:
                return None
        index = position + column - (self.start[1] if line == 0 else 0)
        end = self.text.find("\n", position)
        end = len(self.text) if end < 0 else end
        return index if position <= index < len(self.text) and index <= end else None

    def location_of(self, index: int) -> tuple[int, int]:
        before = self.text[:index]
        newlines = before.count("\n")
        if not newlines:
            return self.start[0], self.start[1] + index
        return self.start[0] + newlines, index - before.rindex("\n") - 1

    def probabilities(self) -> list[float | None]:
        """p of each of the span's characters (None for an indent the studio added)."""
        needed: dict[int, tuple[ChoiceMap, int]] = {}
        for source in self.sources:
            if source is not None:
                choices, index = source
                needed[id(choices)] = (choices, max(index + 1, needed.get(id(choices), (None, 0))[1]))
        probs = {key: choices.probabilities(length) for key, (choices, length) in needed.items()}
        return [None if s is None else probs[id(s[0])][s[1]] for s in self.sources]

    def choice_at(self, index: int) -> tuple[int, object] | None:
        """(the span index where the token starts, its TokenChoice) for the span's character `index`."""
        source = self.sources[index] if 0 <= index < len(self.sources) else None
        if source is None:
            return None
        choices, at = source
        found = choices.choice_at(at)
        if found is None:
            return None
        token_start, choice = found
        start = index
        while start > 0 and self.sources[start - 1] is not None and self.sources[start - 1][0] is choices \
                and self.sources[start - 1][1] >= token_start:
            start -= 1
        return start, choice


class AlternativesFlow:
    def __init__(self, screen):
        self.screen = screen
        self.on = False  # the probability view (off at start; kept for the session)
        self.base_text = ""  # what the current candidates continue (their request's text)
        self.spans: dict[int, AcceptedSpan] = {}  # edit_version -> the accepted span at the end then
        self._styled: AcceptedSpan | None = None  # the span the editor colours now
        self._said = ""  # the status message this flow put up last (it gives way to the alternatives)

    # -- the view ----------------------------------------------------------

    def toggle(self) -> None:
        self.on = not self.on
        self.screen.candidates.show_probabilities = self.on
        self.say(tr("probabilities_on", legend=legend()) if self.on else tr("probabilities_off"))
        self.editor_moved()

    def say(self, message: str) -> None:
        self.screen.status.message = self._said = message

    def current_span(self) -> AcceptedSpan | None:
        return self.spans.get(self.screen.editor.edit_version)

    def editor_moved(self) -> None:
        """After an edit or a cursor move: the editor's colours and the status line's alternatives."""
        if not self.on:
            if self._styled is not None:
                self._styled = None
                self.screen.editor.set_span_styles(None)
                self.screen.status.hint = ""
            return
        editor, span = self.screen.editor, self.current_span()
        if span is not self._styled:
            self._styled = span
            if span is None:
                editor.set_span_styles(None)
            else:
                editor.set_span_styles(span.start, [probability_style(p) for p in span.probabilities()])
        found = self.editor_choice()
        status = self.screen.status
        status.hint = alternatives_strip(found[2]) if found is not None else ""
        if status.hint and status.message == self._said:  # the legend would leave no room for it
            status.message = self._said = ""

    def editor_choice(self) -> tuple[AcceptedSpan, int, object] | None:
        """(the span, where the token at the editor's cursor starts in it, its TokenChoice), or None."""
        span = self.current_span()
        editor = self.screen.editor
        if span is None or editor.selection.start != editor.selection.end:
            return None
        index = span.index_at(editor.cursor_location)
        found = span.choice_at(index) if index is not None else None
        return (span, *found) if found is not None else None

    # -- the candidates ----------------------------------------------------

    def generation_started(self, run: GenerationRun) -> None:
        """New candidates: they continue run.request.text, and their characters are the job's log rows."""
        self.base_text = run.request.text
        self.screen.candidates.follow_job(run.job)

    def open_for_candidate(self, index: int, at: int | None) -> None:
        panel = self.screen.candidates
        found = panel.choice_at(index, at)
        if found is None:
            on_a_character = at is not None and 0 <= index < len(panel.candidates) \
                and 0 <= at < len(panel.candidates[index].text)
            self.screen.status.message = tr("alternatives_not_recorded" if on_a_character
                                            else "alternatives_none_candidate")
            return
        start, choice = found

        def chosen(alternative: Chosen | None) -> None:
            if alternative is not None:
                self.branch(index, start, alternative)

        self.screen.app.push_screen(AlternativesDialog(choice), chosen)

    def branch(self, index: int, at: int, chosen: Chosen) -> None:
        """Candidate `index` cut at `at`, `chosen` put there, and one candidate from there streams into its slot."""
        screen, panel = self.screen, self.screen.candidates
        run = screen.generation
        if run is None or screen.service is None or not 0 <= index < len(panel.candidates):
            return
        story = screen.story.active if screen.story is not None else Story()
        text = self.base_text + panel.candidates[index].text[:at] + chosen.text
        request = build_request(screen.config, text, story, n=1)
        job = screen.service.submit(request, screen.buffer.push)  # the other candidates stop where they are
        screen.generation = GenerationRun(request, job, run.anchor, new_request_id(), indent=run.indent)
        panel.branch(index, at, chosen, job)
        screen.status.activity = tr("reading_prompt")
        self.say(tr("alternative_chosen", token=visible(chosen.text)))

    # -- accepted text -----------------------------------------------------

    def accepted(self, choices: ChoiceMap, taken: str, start: tuple[int, int], version_before: int) -> None:
        """`taken` (a candidate's first characters, mapped by `choices`) went in at `start` as insert_text puts it
        (new paragraphs indented): remember it while it is the manuscript's unedited end."""
        editor = self.screen.editor
        end = editor.document.end
        inserted, sources = inserted_sources(taken, paragraph_indent(editor.text_before(start, INDENT_LOOKBACK)),
                                             choices)
        if editor.cursor_location != end or editor.document.get_text_range(start, end) != inserted:
            return  # not at the end (or not as expected): nothing to show for it
        before = self.spans.get(version_before)
        if before is not None and before.location_of(len(before.text)) == start:  # right after the last accept
            span = AcceptedSpan(before.start, editor.edit_version, before.text + inserted,
                                before.sources + tuple(sources))
        else:
            span = AcceptedSpan(start, editor.edit_version, inserted, tuple(sources))
        self._remember(span)
        self.editor_moved()

    def _remember(self, span: AcceptedSpan) -> None:
        self.spans[span.version] = span
        while len(self.spans) > KEPT_SPANS:
            self.spans.pop(next(iter(self.spans)))

    def open_for_editor(self) -> None:
        found = self.editor_choice()
        if found is None:
            self.screen.status.message = tr("alternatives_none_editor")
            return
        span, start, choice = found

        def chosen(alternative: Chosen | None) -> None:
            if alternative is not None and self.current_span() is span:
                self.replace_from(span, start, alternative)

        self.screen.app.push_screen(AlternativesDialog(choice), chosen)

    def replace_from(self, span: AcceptedSpan, index: int, chosen: Chosen) -> None:
        """The manuscript from the span's character `index` to the end becomes `chosen` (one undo step);
        then new candidates are asked for at the new end."""
        screen = self.screen
        editor = screen.editor
        location = span.location_of(index)
        indent = paragraph_indent(editor.text_before(location, INDENT_LOOKBACK))
        inserted, sources = inserted_sources(chosen.text, indent, ChoiceMap((ChosenPiece(0, chosen),)))
        editor.suggestion = ""
        editor.history.checkpoint()
        editor.replace(inserted, location, editor.document.end)
        editor.history.checkpoint()
        editor.move_cursor(editor.document.end)
        self._remember(AcceptedSpan(span.start, editor.edit_version, span.text[:index] + inserted,
                                    span.sources[:index] + tuple(sources)))
        screen.save_now()
        self.editor_moved()
        screen.action_generate()
