"""The candidates panel: N continuations streaming in, one highlighted.

Side by side when the panel is wide, stacked when narrow. With the panel focused:
up/down (or left/right between columns) choose, enter accepts the highlighted one
up to the cut (the whole text unless the cut was moved), shift+left/right move
the cut, p accepts up to the end of its first sentence, x rejects it, r asks for
new candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from studio.i18n import tr

SENTENCE_ENDS = "。！？!?…；;"
CLOSERS = "”’」』）)》"
WIDE_ENOUGH = 100  # columns for candidates side by side
MAX_CANDIDATES = 9


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


class CandidateView(Static):
    """One candidate: its number and length on the border, its text, the cut shown dimmed."""

    DEFAULT_CSS = """
    CandidateView {
        border: round $panel-lighten-2;
        padding: 0 1;
        height: auto;
        min-height: 3;
    }
    CandidateView.-selected { border: round $accent; }
    CandidateView.-rejected { color: $text-muted; }
    """

    def show(self, number: int, candidate: Candidate, cut: int | None, fixed_size: bool = False) -> None:
        """Draw the candidate. With fixed_size (side by side) only the tail that fits is drawn,
        so the newest text stays in sight and long candidates cost no more to draw."""
        if candidate.rejected:
            self.border_title = tr("candidate_rejected", number=number)
        else:
            key = "candidate_streaming" if candidate.streaming else "candidate_title"
            self.border_title = tr(key, number=number, length=len(candidate.text))
        full = candidate.text
        start = 0
        if fixed_size and self.size.area:
            room = max(1, (self.size.width - 2) * self.size.height // 2 - 2)  # CJK: 2 cells a character
            start = max(0, len(full) - room)
        text = Text(("…" if start else "") + full[start:])
        if cut is not None and cut < len(full):
            text.stylize("dim strike", max(0, cut - start) + (1 if start else 0))
        self.update(text, layout=not fixed_size)
        self.set_class(candidate.rejected, "-rejected")


class CandidatesPanel(Container, can_focus=True):
    DEFAULT_CSS = """
    CandidatesPanel { height: 40%; min-height: 6; border-top: solid $panel-lighten-1; overflow-y: auto; }
    CandidatesPanel:focus-within, CandidatesPanel:focus { border-top: solid $accent; }
    CandidatesPanel.-wide { layout: horizontal; }
    CandidatesPanel.-wide CandidateView { width: 1fr; height: 1fr; }
    CandidatesPanel.-narrow { layout: vertical; }
    CandidatesPanel #placeholder { color: $text-muted; padding: 1 2; }
    """

    BINDINGS = [
        Binding("up", "move(-1)", "Previous", show=False, id="candidates.previous"),
        Binding("down", "move(1)", "Next", show=False, id="candidates.next"),
        Binding("left", "move(-1)", "Previous", show=False, id="candidates.left"),
        Binding("right", "move(1)", "Next", show=False, id="candidates.right"),
        Binding("shift+left", "move_cut(-1)", "Cut earlier", show=False, id="candidates.cut_earlier"),
        Binding("shift+right", "move_cut(1)", "Cut later", show=False, id="candidates.cut_later"),
        Binding("enter", "accept", "Accept", id="candidates.accept"),
        Binding("p", "accept_sentence", "First sentence", id="candidates.partial"),
        Binding("x", "reject", "Reject", id="candidates.reject"),
        Binding("r", "regenerate", "Regenerate", id="candidates.regenerate"),
    ]

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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.candidates: list[Candidate] = []
        self.cut: int | None = None

    def compose(self):
        yield Static("", id="placeholder")
        for i in range(MAX_CANDIDATES):
            yield CandidateView(id=f"candidate-{i}")

    def on_mount(self) -> None:
        self.show_placeholder()
        for view in self.query(CandidateView):
            view.display = False

    def show_placeholder(self, key: str = "ctrl+g") -> None:
        self.query_one("#placeholder", Static).update(tr("no_candidates", key=key))

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE_ENOUGH and len(self.candidates) > 1
        self.set_class(wide, "-wide")
        self.set_class(not wide, "-narrow")

    # -- content -----------------------------------------------------------

    def reset(self, count: int) -> None:
        """Empty views for `count` new candidates."""
        self.candidates = [Candidate() for _ in range(count)]
        self.cut = None
        self.query_one("#placeholder").display = count == 0
        for i, view in enumerate(self.query(CandidateView)):
            view.display = i < count
        self.selected = 0
        self.on_resize()
        self.refresh_views()

    def append(self, index: int, text: str) -> None:
        if 0 <= index < len(self.candidates):
            self.candidates[index].text += text

    def finish(self) -> None:
        for candidate in self.candidates:
            candidate.streaming = False
        self.refresh_views()

    def refresh_views(self) -> None:
        for i, candidate in enumerate(self.candidates):
            view = self.query_one(f"#candidate-{i}", CandidateView)
            view.show(i + 1, candidate, self.cut if i == self.selected else None, fixed_size=self.has_class("-wide"))
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
        if self.candidates:
            self.scroll_to_widget(self.query_one(f"#candidate-{self.selected}"), animate=False)
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
