"""The scan view's list: one row a line, drawn only when in sight (a long book's thousands of paragraphs open
at once, where an OptionList measures every option first). The cursor moves over the rows that lead into the
manuscript; enter posts Chosen with that row's position."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from rich.segment import Segment
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Row:
    text: str
    position: int | None = None  # where enter goes in the manuscript; None: a heading or a note
    kind: str = ""  # "" | "heading" | "worst"


class ScanList(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"scan-list--cursor", "scan-list--heading", "scan-list--worst", "scan-list--note"}
    DEFAULT_CSS = """
    ScanList { width: 1fr; height: 1fr; overflow-x: hidden; overflow-y: auto; }
    ScanList > .scan-list--cursor { background: $accent 40%; text-style: bold; }
    ScanList:focus > .scan-list--cursor { background: $accent; color: $text; }
    ScanList > .scan-list--heading { color: $accent; text-style: bold; }
    ScanList > .scan-list--worst { color: $error; text-style: bold; }
    ScanList > .scan-list--note { color: $text-muted; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False, id="scan.previous"),
        Binding("down", "move(1)", "Down", show=False, id="scan.next"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="scan.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="scan.page_down"),
        Binding("home", "jump(0)", "First", show=False, id="scan.first"),
        Binding("end", "jump(-1)", "Last", show=False, id="scan.last"),
        Binding("enter", "choose", "Go there", id="scan.go"),
    ]

    class Chosen(Message):
        def __init__(self, position: int):
            super().__init__()
            self.position = position

    def __init__(self, rows: list[Row], **kwargs):
        super().__init__(**kwargs)
        self.rows = rows
        self.targets = [i for i, row in enumerate(rows) if row.position is not None]  # rows the cursor stops on
        self.cursor = self.targets[0] if self.targets else None
        self.virtual_size = Size(1, len(rows))  # rows are cut at the width: no sideways scrolling

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = y + self.scroll_offset.y
        if index >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        if row.kind:
            style += self.get_component_rich_style(f"scan-list--{row.kind}")
        elif row.position is None:
            style += self.get_component_rich_style("scan-list--note")
        if index == self.cursor:
            style += self.get_component_rich_style("scan-list--cursor")
        return Strip([Segment(row.text, style)]).crop(0, width).adjust_cell_length(width, style)

    # -- the cursor ----------------------------------------------------------

    def move_to(self, index: int | None) -> None:
        if index is None or index == self.cursor:
            return
        self.cursor = index
        height = self.scrollable_content_region.height
        top = round(self.scroll_y)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif height and index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False)
        self.refresh()

    def _step(self, delta: int) -> int | None:
        """The row `delta` targets away from the cursor's (clamped to the first and last)."""
        if self.cursor is None:
            return None
        here = bisect.bisect_left(self.targets, self.cursor)
        return self.targets[max(0, min(len(self.targets) - 1, here + delta))]

    def action_move(self, delta: int) -> None:
        self.move_to(self._step(delta))

    def action_page(self, direction: int) -> None:
        """A page of rows on: the first target at or past it (down), the last at or before it (up)."""
        if self.cursor is None:
            return
        goal = self.cursor + direction * max(1, self.scrollable_content_region.height - 1)
        if direction > 0:
            index = min(bisect.bisect_left(self.targets, goal), len(self.targets) - 1)
        else:
            index = max(bisect.bisect_right(self.targets, goal) - 1, 0)
        self.move_to(self.targets[index])

    def action_jump(self, where: int) -> None:
        if self.targets:
            self.move_to(self.targets[where])
            if where == 0:
                self.scroll_to(y=0, animate=False)

    def action_choose(self) -> None:
        if self.cursor is not None:
            self.post_message(self.Chosen(self.rows[self.cursor].position))

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = offset.y + round(self.scroll_y)
        if 0 <= index < len(self.rows) and self.rows[index].position is not None:
            self.move_to(index)
            if event.chain == 2:  # a double click goes there
                self.action_choose()
