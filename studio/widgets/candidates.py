"""The candidates panel: N continuations streaming in, one highlighted.

Side by side when the panel is wide (each candidate scrolls in its own column),
stacked when narrow (the panel scrolls). Each candidate is shown from its start,
wrapped like the manuscript (studio/text/cjk_wrap.py: no line starts with 。，
and the like). While a candidate streams its column follows the newest text; when
it finishes (unless the author scrolled it meanwhile) it goes back to its start.

With the panel focused: up/down (or left/right between columns) choose, enter
accepts the highlighted one up to the cut (the whole text unless the cut was
moved), digits 1-9 accept candidate N whole, shift+left/right move the cut, p
accepts up to the end of its first sentence, x rejects it, r asks for new
candidates, pageup/pagedown/home/end scroll the highlighted one.

The probability view (show_probabilities) colours each character by its probability
(studio/widgets/probability_style.py); the cut is then also the cursor: the character
just after it is marked and its alternatives are written under the candidate, and `a`
asks the screen for the list to choose one from (AlternativesWanted). Each candidate's
characters map to their token choices through its ChoiceMap (studio/choice_map.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingsMap
from textual.containers import Container
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from ai_writer.studio.choice_map import ChoiceMap, Chosen
from ai_writer.studio import textual_compat as compat
from ai_writer.studio.i18n import tr
from ai_writer.studio.text.cjk_wrap import cjk_wrap_offsets
from ai_writer.studio.widgets.probability_style import MARK_STYLE, alternatives_strip, probability_style

SENTENCE_ENDS = "。！？!?…；;"
CLOSERS = "”’」』）)》"
WIDE_ENOUGH = 100  # columns for candidates side by side
MAX_CANDIDATES = 9
CUT_STYLE = Style(dim=True, strike=True)  # the part after the cut, which accepting leaves out


def first_sentence_end(text: str) -> int:
    """Length of the text's first sentence, closing quotes included (the whole text if none ends)."""
    for i, char in enumerate(text):
        if char in SENTENCE_ENDS or char == "\n":
            end = i + 1
            while end < len(text) and (text[end] in SENTENCE_ENDS or text[end] in CLOSERS):
                end += 1
            return end if char != "\n" else i
    return len(text)


@dataclass
class Candidate:
    text: str = ""
    streaming: bool = True
    rejected: bool = False
    choices: ChoiceMap = field(default_factory=ChoiceMap)  # each character's token choice
    source: str = ""  # where it started, when two starts are compared (the state's name), else ""


class CandidateRows:
    """A text's display rows at one width: (start, end) character offsets, one pair a row.

    Text only grows while a candidate streams, so the rows of its finished lines
    (up to the last newline) are kept and only the last line is wrapped again."""

    def __init__(self):
        self.text = ""
        self.width = 0
        self.ambiguous_width = 1
        self.rows: list[tuple[int, int]] = []
        self._done_chars = 0  # text[:_done_chars] ends in a newline and has its final rows...
        self._done_rows = 0  # ...which are rows[:_done_rows]

    def update(self, text: str, width: int, ambiguous_width: int = 1) -> list[tuple[int, int]]:
        same_width = (width, ambiguous_width) == (self.width, self.ambiguous_width)
        if same_width and text is self.text:  # the common case: drawn again, nothing new
            return self.rows
        if not same_width or not text.startswith(self.text[: self._done_chars]):
            self._done_chars = self._done_rows = 0
        elif text == self.text:
            return self.rows
        self.text, self.width, self.ambiguous_width = text, width, ambiguous_width
        rows = self.rows[: self._done_rows]
        position = self._done_chars
        while True:
            newline = text.find("\n", position)
            line = text[position:] if newline < 0 else text[position:newline]
            # tab_size 1: a tab is drawn as one space (candidates rarely hold one)
            offsets = cjk_wrap_offsets(line, width, 1, ambiguous_width=ambiguous_width)
            rows.extend((position + start, position + end) for start, end in zip([0, *offsets], [*offsets, len(line)]))
            if newline < 0:
                break
            position = newline + 1
            self._done_chars, self._done_rows = position, len(rows)
        self.rows = rows
        return rows


class CandidateView(ScrollView, can_focus=False):
    """One candidate: its number and length on the border, its text from the start, the cut shown dimmed."""

    DEFAULT_CSS = """
    CandidateView {
        border: round $panel-lighten-2;
        padding: 0 1;
        height: auto;
        min-height: 3;
        overflow-x: hidden;
        overflow-y: hidden;
        scrollbar-size-vertical: 1;
    }
    CandidateView.-selected { border: round $accent; }
    CandidateView.-rejected { color: $text-muted; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.candidate = Candidate(streaming=False)
        self.cut: int | None = None
        self.ambiguous_width = 1
        self.following = True  # keep the newest text in sight while streaming (until the author scrolls)
        self._was_streaming = False
        self._shown: tuple | None = None  # what show() drew last
        self._rows = CandidateRows()
        self.probabilities = False  # colour each character by its probability
        self._probs: list[float | None] = []  # p of each character, read from the logs at show()

    def show(self, number: int, candidate: Candidate, cut: int | None) -> None:
        """Draw the candidate (its text may have grown since the last call); nothing to do if nothing changed."""
        state = (number, id(candidate), len(candidate.text), candidate.streaming, candidate.rejected, cut,
                 self.probabilities, id(candidate.choices), candidate.source)
        if state == self._shown:
            return
        grew = (self._shown is not None and candidate is self.candidate and state[:2] == self._shown[:2]
                and state[3:] == self._shown[3:] and state[2] > self._shown[2])
        self._shown = state
        if self.probabilities:
            self._probs = candidate.choices.probabilities(len(candidate.text))
        label = tr("candidate_from", number=number, source=candidate.source) if candidate.source else number
        if candidate.rejected:
            title = tr("candidate_rejected", number=label)
        else:
            key = "candidate_streaming" if candidate.streaming else "candidate_title"
            title = tr(key, number=label, length=len(candidate.text))
        if grew:  # the common case while streaming: characters added, nothing else changed
            self._show_growth(title)
            return
        self.border_subtitle = self.alternatives_text(candidate, cut)
        self.border_title = title
        if candidate is not self.candidate:  # a new request
            self.scroll_to(y=0, animate=False)
            self.following = True
        finished = self.candidate is candidate and self._was_streaming and not candidate.streaming
        self.candidate, self.cut = candidate, cut
        self._was_streaming = candidate.streaming
        self.set_class(candidate.rejected, "-rejected")
        self._rewrap()
        if candidate.streaming and self.following:
            self.scroll_to(y=self.max_scroll_y, animate=False)
        elif finished and self.following:  # done: back to where it starts
            self.following = False
            self.scroll_to(y=0, animate=False)
        self.refresh()

    def _show_growth(self, title: str) -> None:
        """Repaint what new characters changed: the rows from the one the text ended in, and the title's row. A
        repaint of all four views for each few characters was most of a frame (and typed keys waited behind it);
        when the view scrolls to follow the text, Textual repaints all of it anyway."""
        first = max(0, len(self._rows.rows) - 1)
        self._rewrap()
        if self.following:
            self.scroll_to(y=self.max_scroll_y, animate=False)
        self.refresh_lines(first, max(1, len(self._rows.rows) - first))
        compat.set_border_title_quietly(self, title)

    def alternatives_text(self, candidate: Candidate, cut: int | None) -> str:
        """With the view on: the alternatives of the character just after the cut ('' when none)."""
        if not self.probabilities or cut is None or not 0 <= cut < len(candidate.text):
            return ""
        found = candidate.choices.choice_at(cut)
        return alternatives_strip(found[1]) if found is not None else ""

    def set_ambiguous_width(self, value: int) -> None:
        """Cells for ambiguous-width punctuation; the next show() wraps again."""
        self.ambiguous_width = value
        self._shown = None

    # -- rows --------------------------------------------------------------

    def wrap_width(self) -> int:
        return self.scrollable_content_region.width

    def _rewrap(self) -> None:
        width = self.wrap_width()
        if width <= 0:
            return
        before = len(self._rows.rows)
        rows = self._rows.update(self.candidate.text, width, self.ambiguous_width)
        size = Size(width, len(rows))
        if self.styles.height is not None and self.styles.height.is_auto:  # stacked: the view grows with its text
            self.virtual_size = size
            if len(rows) != before:
                self.refresh(layout=True)
        elif size != self.virtual_size:
            # side by side, a fixed height: only the rows it scrolls over changed. A layout of the whole screen for
            # each new row was 20-45 ms of the UI thread a row, which typed keys waited behind (bench_studio).
            compat.set_virtual_size_quietly(self, size)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._rows.update(self.candidate.text, max(1, width), self.ambiguous_width))

    def on_resize(self) -> None:
        self._rewrap()
        if self.candidate.streaming and self.following:
            self.scroll_to(y=self.max_scroll_y, animate=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old and new < self.max_scroll_y:  # scrolled back (wheel, scrollbar, keys): stop following
            self.following = False

    def displayed_rows(self) -> list[str]:
        """The text of every display row (what scrolling can bring into sight)."""
        text = self.candidate.text
        return [text[start:end] for start, end in self._rows.rows]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = y + self.scroll_offset.y
        rows = self._rows.update(self.candidate.text, width, self.ambiguous_width) if width > 0 else []
        if index >= len(rows):
            return Strip.blank(width, base)
        start, end = rows[index]
        text = self.candidate.text
        cut = len(text) if self.cut is None else max(0, self.cut)
        if self.probabilities:
            return self._probability_line(text, start, end, cut, width, base)
        segments = []
        if start < min(end, cut):
            segments.append(Segment(text[start:min(end, cut)].replace("\t", " "), base))
        if max(start, cut) < end:
            segments.append(Segment(text[max(start, cut):end].replace("\t", " "), base + CUT_STYLE))
        return Strip(segments).adjust_cell_length(width, base)

    def _probability_line(self, text: str, start: int, end: int, cut: int, width: int, base: Style) -> Strip:
        """A row with each character in its probability band's style, the cut dimmed, the cursor marked."""
        probs, mark = self._probs, self.cut
        styles: dict[tuple, Style] = {}
        segments: list[Segment] = []
        run_key, run_start = None, start
        for i in range(start, end + 1):
            key = None
            if i < end:
                key = (probability_style(probs[i] if i < len(probs) else None), i >= cut, i == mark)
            if key != run_key:
                if run_key is not None:
                    segments.append(Segment(text[run_start:i].replace("\t", " "), styles[run_key]))
                run_key, run_start = key, i
                if key is not None and key not in styles:
                    band, after_cut, marked = key
                    style = base + band if band is not None else base
                    style = style + CUT_STYLE if after_cut else style
                    styles[key] = style + MARK_STYLE if marked else style
        if mark == end and end < len(text) and text[end] == "\n":  # the cursor on a newline: shown as ⏎
            segments.append(Segment("⏎", base + MARK_STYLE))
        return Strip(segments).adjust_cell_length(width, base)


def panel_bindings() -> list[Binding]:
    """The panel's keys, described in the interface language (built when the panel is made)."""
    return [
        Binding("up", "move(-1)", tr("key_previous"), show=False, id="candidates.previous"),
        Binding("down", "move(1)", tr("key_next"), show=False, id="candidates.next"),
        Binding("left", "move(-1)", tr("key_previous"), show=False, id="candidates.left"),
        Binding("right", "move(1)", tr("key_next"), show=False, id="candidates.right"),
        Binding("shift+left", "move_cut(-1)", tr("key_cut_earlier"), show=False, id="candidates.cut_earlier"),
        Binding("shift+right", "move_cut(1)", tr("key_cut_later"), show=False, id="candidates.cut_later"),
        Binding("enter", "accept", tr("key_accept"), id="candidates.accept"),
        # Alt-free: works in any terminal. One footer entry stands for all nine.
        *[Binding(str(n), f"accept_number({n})", tr("key_accept_digit") if n == 1 else tr("cmd_accept", number=n),
                  show=n == 1, key_display="1-9" if n == 1 else None, id=f"candidates.accept_{n}")
          for n in range(1, MAX_CANDIDATES + 1)],
        Binding("p", "accept_sentence", tr("key_first_sentence"), id="candidates.partial"),
        Binding("x", "reject", tr("key_reject"), id="candidates.reject"),
        Binding("r", "regenerate", tr("key_regenerate"), id="candidates.regenerate"),
        Binding("a", "alternatives", tr("key_alternatives"), id="candidates.alternatives"),
        Binding("pageup", "scroll_candidate('page_up')", tr("key_scroll_up"), show=False, id="candidates.scroll_up"),
        Binding("pagedown", "scroll_candidate('page_down')", tr("key_scroll_down"), show=False,
                id="candidates.scroll_down"),
        Binding("home", "scroll_candidate('start')", tr("key_scroll_start"), show=False, id="candidates.scroll_start"),
        Binding("end", "scroll_candidate('end')", tr("key_scroll_end"), show=False, id="candidates.scroll_end"),
    ]


class CandidatesPanel(Container, can_focus=True):
    DEFAULT_CSS = """
    CandidatesPanel { height: 40%; min-height: 6; border-top: solid $panel-lighten-1; overflow-y: auto; }
    CandidatesPanel:focus-within, CandidatesPanel:focus { border-top: solid $accent; }
    CandidatesPanel.-wide { layout: horizontal; }
    CandidatesPanel.-wide CandidateView { width: 1fr; height: 1fr; overflow-y: auto; }
    CandidatesPanel.-narrow { layout: vertical; }
    CandidatesPanel #placeholder { color: $text-muted; padding: 1 2; }
    """

    BINDINGS = panel_bindings()  # English; each panel builds its own in the chosen language

    selected: reactive[int] = reactive(0)

    class Accept(Message):
        def __init__(self, index: int, length: int | None):
            super().__init__()
            self.index, self.length = index, length  # length None: the whole text

    class Reject(Message):
        def __init__(self, index: int):
            super().__init__()
            self.index = index

    class Regenerate(Message):
        pass

    class Highlighted(Message):
        """The highlighted candidate or its cut changed (the ghost text follows it)."""

    class AlternativesWanted(Message):
        """`a`: the author asks for the alternatives of the character just after candidate `index`'s cut."""

        def __init__(self, index: int, at: int | None):
            super().__init__()
            self.index, self.at = index, at  # at None: the cut was not moved (no character after it)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._bindings = BindingsMap(panel_bindings())
        self.candidates: list[Candidate] = []
        self.cut: int | None = None
        self._ambiguous_width = 1
        self._show_probabilities = False
        self._slot_of: dict[int, int] | None = None  # a branch: its job's candidate 0 -> the slot it continues

    @property
    def show_probabilities(self) -> bool:
        """Each character coloured by its probability, the alternatives of the one after the cut shown."""
        return self._show_probabilities

    @show_probabilities.setter
    def show_probabilities(self, value: bool) -> None:
        self._show_probabilities = value
        for view in self.query(CandidateView):
            view.probabilities = value
        self.refresh_views()

    @property
    def ambiguous_width(self) -> int:
        """Cells for ambiguous-width punctuation, as the editor counts them ([studio] ambiguous_width)."""
        return self._ambiguous_width

    @ambiguous_width.setter
    def ambiguous_width(self, value: int) -> None:
        self._ambiguous_width = value
        for view in self.query(CandidateView):
            view.set_ambiguous_width(value)
        if self.candidates:
            self.refresh_views()

    def compose(self):
        yield Static("", id="placeholder")
        for i in range(MAX_CANDIDATES):
            yield CandidateView(id=f"candidate-{i}")

    def on_mount(self) -> None:
        self.show_placeholder()
        for view in self.query(CandidateView):
            view.display = False
            view.set_ambiguous_width(self._ambiguous_width)
            view.probabilities = self._show_probabilities

    def show_placeholder(self, key: str = "ctrl+g") -> None:
        self.query_one("#placeholder", Static).update(tr("no_candidates", key=key))

    @property
    def wide(self) -> bool:
        return self.has_class("-wide")

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE_ENOUGH and len(self.candidates) > 1
        self.set_class(wide, "-wide")
        self.set_class(not wide, "-narrow")

    def view(self, index: int) -> CandidateView:
        return self.query_one(f"#candidate-{index}", CandidateView)

    # -- content -----------------------------------------------------------

    def reset(self, count: int) -> None:
        """Empty views for `count` new candidates."""
        self.candidates = [Candidate() for _ in range(count)]
        self.cut = None
        self._slot_of = None
        self.query_one("#placeholder").display = count == 0
        for i, view in enumerate(self.query(CandidateView)):
            view.display = i < count
        self.selected = 0
        self.on_resize()
        self.refresh_views()
        self.scroll_home(animate=False)

    def set_sources(self, sources) -> None:
        """Each candidate's start, named in its title (two starts compared); empty: none named."""
        for candidate, source in zip(self.candidates, sources):
            candidate.source = source
        self.refresh_views()

    def follow_job(self, job) -> None:
        """The candidates are `job`'s rows: their characters map to its ChoiceLog."""
        for row, candidate in enumerate(self.candidates):
            candidate.choices = ChoiceMap.of_job(job, row)

    def branch(self, index: int, at: int, chosen: Chosen, job) -> None:
        """Candidate `index` becomes its text up to `at` plus `chosen`; `job`'s one candidate streams on after it.

        The others stop where they got to (the service runs one job at a time)."""
        for other in self.candidates:
            other.streaming = False
        candidate = self.candidates[index]
        candidate.text = candidate.text[:at] + chosen.text
        candidate.choices = candidate.choices.then_chosen(at, chosen, job)
        candidate.streaming, candidate.rejected = True, False
        self._slot_of = {0: index}
        self.view(index).following = True
        if self.selected != index:
            self.selected = index  # (resets the cut)
        self.cut = None
        self.refresh_views()
        self.post_message(self.Highlighted())

    def choice_at(self, index: int, at: int | None) -> tuple[int, object] | None:
        """(where its token starts, the TokenChoice) of candidate `index`'s character `at`; None when unknown."""
        if not 0 <= index < len(self.candidates) or at is None:
            return None
        candidate = self.candidates[index]
        return candidate.choices.choice_at(at) if 0 <= at < len(candidate.text) else None

    def append(self, index: int, text: str) -> None:
        if self._slot_of is not None:
            index = self._slot_of.get(index, -1)
        if 0 <= index < len(self.candidates):
            self.candidates[index].text += text

    def finish(self) -> None:
        for candidate in self.candidates:
            candidate.streaming = False
        self.refresh_views()

    def refresh_views(self) -> None:
        for i, candidate in enumerate(self.candidates):
            view = self.view(i)
            view.show(i + 1, candidate, self.cut if i == self.selected else None)
            view.set_class(i == self.selected, "-selected")

    def highlighted_text(self) -> str:
        """The highlighted candidate's text up to the cut ('' when none)."""
        if not self.candidates or self.candidates[self.selected].rejected:
            return ""
        text = self.candidates[self.selected].text
        return text if self.cut is None else text[: self.cut]

    def watch_selected(self) -> None:
        self.cut = None
        self.refresh_views()
        if self.candidates and not self.wide:  # stacked: bring the highlighted one's start into sight
            self.scroll_to_widget(self.view(self.selected), animate=False, top=True)
        self.post_message(self.Highlighted())

    # -- actions -----------------------------------------------------------

    def action_move(self, delta: int) -> None:
        if self.candidates:
            self.selected = (self.selected + delta) % len(self.candidates)

    def action_move_cut(self, delta: int) -> None:
        if not self.candidates:
            return
        text = self.candidates[self.selected].text
        current = len(text) if self.cut is None else self.cut
        self.cut = max(0, min(len(text), current + delta))
        self.refresh_views()
        self.post_message(self.Highlighted())

    def action_accept(self) -> None:
        if self.candidates:
            self.post_message(self.Accept(self.selected, self.cut))

    def action_accept_number(self, number: int) -> None:
        """Candidate `number` (1-based) whole; the app says so when there is no such candidate."""
        self.post_message(self.Accept(number - 1, None))

    def action_accept_sentence(self) -> None:
        if self.candidates:
            self.post_message(self.Accept(self.selected, first_sentence_end(self.candidates[self.selected].text)))

    def action_reject(self) -> None:
        if self.candidates:
            self.candidates[self.selected].rejected = True
            self.refresh_views()
            self.post_message(self.Reject(self.selected))
            self.post_message(self.Highlighted())

    def action_regenerate(self) -> None:
        self.post_message(self.Regenerate())

    def action_alternatives(self) -> None:
        if self.candidates:
            self.post_message(self.AlternativesWanted(self.selected, self.cut))

    def action_scroll_candidate(self, where: str) -> None:
        """Scroll the highlighted candidate: its own column when side by side, the panel when stacked."""
        if not self.candidates:
            return
        view = self.view(self.selected)
        view.following = False
        if self.wide:
            target = view
            region_top, region_bottom = 0, view.max_scroll_y
        else:
            target = self
            region_top = view.virtual_region.y
            region_bottom = max(region_top, view.virtual_region.bottom - self.scrollable_content_region.height)
        page = max(1, target.scrollable_content_region.height - 1)
        y = {"start": region_top, "end": region_bottom,
             "page_up": target.scroll_y - page, "page_down": target.scroll_y + page}[where]
        target.scroll_to(y=y, animate=False)
