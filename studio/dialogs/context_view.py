"""The context viewer: exactly what the model reads for the next candidates, part by part.

Each part (memory, a lore entry, the story, the author's note) has a header with its
length, then its text as read, line breaks shown as ⏎. Long parts scroll inside a
read-only TextArea (it draws only the rows in view, so a 100,000-character story opens
at once). Below: the lore keys that fired and where, the entries left out and why,
what was cut, and how much of it is read again rather than taken from the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from ai_writer.studio import textual_compat as compat
from ai_writer.studio.context_report import cut_lines, hit_lines, left_out_lines, part_title, visible
from ai_writer.studio.i18n import tr

if TYPE_CHECKING:
    from ai_writer.backends.writing.context import AssembledContext, ContextPart

class ContextView(ModalScreen[None]):
    DEFAULT_CSS = """
    ContextView { align: center middle; }
    ContextView > Vertical { width: 100%; max-width: 120; height: 100%; background: $surface; border: round $accent; }
    ContextView .summary { height: auto; padding: 0 1; }
    ContextView #context-title { text-style: bold; color: $accent; }
    ContextView VerticalScroll { height: 1fr; padding: 0 1; }
    ContextView .part-header { margin-top: 1; text-style: bold; color: $accent; }
    ContextView .section { margin-top: 1; text-style: bold; }
    ContextView TextArea { height: auto; padding: 0; }
    ContextView .empty, ContextView .none { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="context.close")]

    def __init__(self, context: "AssembledContext", total_tokens: int, cached_tokens: int):
        super().__init__()
        compat.retitle_bindings(self, {"context.close": tr("cv_key_close")})
        self.context, self.total_tokens, self.cached_tokens = context, total_tokens, cached_tokens

    def compose(self):
        context = self.context
        reread = max(0, self.total_tokens - self.cached_tokens)
        with Vertical():
            yield Static(tr("cv_title", chars=len(context.text)), id="context-title", classes="summary", markup=False)
            yield Static(tr("cv_reread", reread=reread, total=self.total_tokens), id="context-reread",
                         classes="summary", markup=False)
            scroll = VerticalScroll(id="context-parts")
            with scroll:
                for index, part in enumerate(context.parts):
                    yield from self._part(index, part)
                yield Static(tr("cv_hits"), classes="section")
                yield self._lines("context-hits", hit_lines(context))
                yield Static(tr("cv_left_out"), classes="section")
                yield self._lines("context-left-out", left_out_lines(context))
                yield Static(tr("cv_cut"), classes="section")
                yield self._lines("context-cut", cut_lines(context))
            yield Footer()

    @staticmethod
    def _part(index: int, part: "ContextPart"):
        yield Static(tr("cv_part_header", part=part_title(part.kind, part.name), chars=len(part.text)),
                     id=f"part-{index}-header", classes="part-header", markup=False)
        if not part.text:
            yield Static(tr("cv_empty_part"), id=f"part-{index}", classes="empty")
            return
        area = TextArea(visible(part.text), id=f"part-{index}", read_only=True, show_cursor=False, soft_wrap=True,
                        highlight_cursor_line=False, compact=True)
        area.can_focus = False  # one scroll for the whole view: its keys page through every part
        yield area

    @staticmethod
    def _lines(widget_id: str, lines: list[str]) -> Static:
        if not lines:
            return Static(tr("cv_none"), id=widget_id, classes="none")
        return Static("\n".join(lines), id=widget_id, markup=False)

    def on_mount(self) -> None:
        self.query_one("#context-parts").focus()

    def action_close(self) -> None:
        self.dismiss(None)
