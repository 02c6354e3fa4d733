"""The story panel: memory, author's note and lorebook entries, edited by keyboard.

Every field is checked as it is typed: an invalid one is marked and its reason is
shown under it. ctrl+s saves through the `save` callable the main screen gives
(nothing is saved while any field, of any entry, is invalid); escape closes, asking
first when there are unsaved changes. The dismiss result is the last saved Story,
or None when nothing was saved. The story's [generation] overrides are kept as given.

The widgets hold the selected lore entry; the other entries wait as drafts (their
fields' text as typed), so an entry can be left half-edited and come back unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Footer, Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from ai_writer.backends.writing.context import REGEX_KEY, compile_key
from ai_writer.backends.writing.story import NOTE_UNITS, LoreEntry, Story
from ai_writer.studio import textual_compat as compat
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.i18n import tr

KEY_SEPARATORS = re.compile(r"([,，])")


def split_keys(raw: str) -> tuple[str, ...]:
    """'张三, /李.四/，王五' -> ('张三', '/李.四/', '王五'). Both , and ， separate keys; a separator inside
    a /regex/ stays in it (an opening slash never closed is a plain key)."""
    parts = KEY_SEPARATORS.split(raw)  # piece, separator, piece, ...
    keys, regex = [], None  # regex: the pieces of a /regex/ read so far
    for index in range(0, len(parts), 2):
        piece = parts[index]
        if regex is not None:
            regex += parts[index - 1] + piece
            if _closed_regex(regex.strip()):
                keys.append(regex)
                regex = None
        elif piece.strip().startswith("/") and not _closed_regex(piece.strip()):
            regex = piece
        else:
            keys.append(piece)
    if regex is not None:
        keys.extend(KEY_SEPARATORS.split(regex)[::2])
    return tuple(key.strip() for key in keys if key.strip())


def _closed_regex(text: str) -> bool:
    """Whether `text` is a whole /regex/ (flags after the closing slash allowed: /李.四/i)."""
    return REGEX_KEY.fullmatch(text) is not None


def join_keys(keys: tuple[str, ...]) -> str:
    return ", ".join(keys)


def keys_problem(raw: str) -> str | None:
    """Why one of the comma-separated keys in `raw` cannot be used (a bad /regex/), or None."""
    for key in split_keys(raw):
        try:
            compile_key(key)  # as the context assembler and the story file check it
        except ValueError as error:  # its reason names the key
            return str(error)
    return None


def int_problem(raw: str, minimum: int | None = None) -> str | None:
    """Why `raw` is not a whole number (at least `minimum`), or None."""
    text = raw.strip()
    if not text:
        return tr("sp_number_needed")
    try:
        value = int(text)
    except ValueError:
        return tr("problem_not_int", raw=text)
    if minimum is not None and value < minimum:
        return tr("sp_at_least", minimum=minimum, value=value)
    return None


def name_problem(raw: str) -> str | None:
    return tr("sp_name_needed") if not raw.strip() else None


@dataclass
class EntryDraft:
    """A lore entry's fields as typed (numbers and keys still text); `origin` keeps what is not edited here."""

    name: str
    keys: str
    secondary_keys: str
    exclude_keys: str
    text: str
    enabled: bool
    constant: bool
    priority: str
    scan_chars: str
    origin: LoreEntry

    @classmethod
    def of(cls, entry: LoreEntry) -> "EntryDraft":
        return cls(entry.name, join_keys(entry.keys), join_keys(entry.secondary_keys), join_keys(entry.exclude_keys),
                   entry.text, entry.enabled, entry.constant, str(entry.priority), str(entry.scan_chars), entry)

    def values(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "origin")

    def problems(self) -> dict[str, str]:
        """field -> reason, for every invalid field."""
        found = {
            "name": name_problem(self.name),
            "keys": keys_problem(self.keys),
            "secondary_keys": keys_problem(self.secondary_keys),
            "exclude_keys": keys_problem(self.exclude_keys),
            "priority": int_problem(self.priority),
            "scan_chars": int_problem(self.scan_chars, minimum=0),
        }
        return {name: problem for name, problem in found.items() if problem}

    def entry(self) -> LoreEntry:
        """The LoreEntry these fields describe (only when problems() is empty)."""
        return replace(self.origin, name=self.name.strip(), keys=split_keys(self.keys),
                       secondary_keys=split_keys(self.secondary_keys), exclude_keys=split_keys(self.exclude_keys),
                       text=self.text, enabled=self.enabled, constant=self.constant,
                       priority=int(self.priority.strip()), scan_chars=int(self.scan_chars.strip()))


# The selected entry's widgets: draft field -> widget id.
ENTRY_INPUTS = {"name": "entry-name", "keys": "entry-keys", "secondary_keys": "entry-secondary",
                "exclude_keys": "entry-exclude", "priority": "entry-priority", "scan_chars": "entry-scan"}
ENTRY_CHECKS = {"enabled": "entry-enabled", "constant": "entry-constant"}
# Field -> the i18n ids of its short name and the explanation beside it.
LABELS = {
    "memory": "sp_field_memory", "note": "sp_field_note", "depth": "sp_field_depth", "unit": "sp_field_unit",
    "lore": "sp_field_lore", "name": "sp_field_name", "keys": "sp_field_keys",
    "secondary_keys": "sp_field_secondary", "exclude_keys": "sp_field_exclude", "text": "sp_field_text",
    "priority": "sp_field_priority", "scan_chars": "sp_field_scan",
}


def field_label(field: str) -> Text:
    """The field's short name, its explanation dim beside it."""
    return Text.assemble(tr(LABELS[field]), ("  " + tr(LABELS[field] + "_hint"), "dim"))


class StoryPanel(ModalScreen[Story | None]):
    DEFAULT_CSS = """
    StoryPanel { align: center middle; }
    StoryPanel > Vertical { width: 100%; max-width: 110; height: 100%; background: $surface; border: round $accent; }
    StoryPanel #story-title { height: 1; padding: 0 1; text-style: bold; color: $accent; }
    StoryPanel #story-status { height: auto; padding: 0 1; color: $success; display: none; }
    StoryPanel #story-status.-error { color: $error; }
    StoryPanel VerticalScroll { height: 1fr; padding: 0 1; }
    StoryPanel Label { margin-top: 1; width: 100%; }
    StoryPanel .section { margin-top: 1; text-style: bold; color: $accent; }
    StoryPanel TextArea { height: 6; }
    StoryPanel #note-text { height: 4; }
    StoryPanel Input { height: 3; }
    StoryPanel Select { width: 30; }
    StoryPanel OptionList { height: auto; max-height: 8; }
    StoryPanel .field, StoryPanel #entry-fields { height: auto; }
    StoryPanel Checkbox { width: auto; margin-right: 2; }
    StoryPanel .problem { color: $error; height: auto; display: none; }
    StoryPanel #no-entries { color: $text-muted; }
    """
    AUTO_FOCUS = ""  # focused in on_mount without scrolling (before the first layout it would scroll)
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="story.save"),
        Binding("escape", "close", "Close", id="story.close"),
        Binding("ctrl+n", "new_entry", "New entry", id="story.new_entry"),
        Binding("delete", "delete_entry", "Delete entry", id="story.delete_entry"),
    ]
    BINDING_TITLES = {"story.save": "sp_key_save", "story.close": "sp_key_close",
                      "story.new_entry": "sp_key_new", "story.delete_entry": "sp_key_delete"}

    def __init__(self, story: Story, story_path: Path, save: Callable[[Story], str | None]):
        super().__init__()
        compat.retitle_bindings(self, {binding_id: tr(key) for binding_id, key in self.BINDING_TITLES.items()})
        self.story, self.story_path, self.save_story = story, Path(story_path), save
        self.saved: Story | None = None  # the dismiss result: the last Story saved here
        self.drafts = [EntryDraft.of(entry) for entry in story.lore]
        self.current: int | None = 0 if self.drafts else None  # the entry the widgets show
        self._saved_values = self._values()

    # -- layout ----------------------------------------------------------------------

    def compose(self):
        note = self.story.authors_note
        unit = note.unit if note.unit in NOTE_UNITS else NOTE_UNITS[0]
        with Vertical():
            yield Static(tr("sp_title", name=self.story_path.name), id="story-title", markup=False)
            yield Static("", id="story-status", markup=False)
            scroll = VerticalScroll(id="story-fields")
            scroll.can_focus = False  # tab goes from field to field
            with scroll:
                yield self._field("memory", TextArea(self.story.memory, id="memory", soft_wrap=True))
                yield self._field("note", TextArea(note.text, id="note-text", soft_wrap=True))
                yield self._field("depth", Input(str(note.depth), id="note-depth"), problem=True)
                yield self._field("unit", Select([(tr(f"sp_unit_{name}"), name) for name in NOTE_UNITS], value=unit,
                                                 allow_blank=False, compact=True, id="note-unit"))
                with Vertical(classes="field"):
                    yield Static(tr("sp_field_lore"), classes="section")
                    yield Static(tr("sp_field_lore_hint"), markup=False)
                    yield OptionList(*[Option(self._entry_prompt(draft)) for draft in self.drafts], id="lore-list")
                    yield Static(tr("sp_no_entries"), id="no-entries")
                with Vertical(id="entry-fields"):
                    for field, widget_id in ENTRY_INPUTS.items():
                        if field == "priority":
                            yield self._field("text", TextArea("", id="entry-text", soft_wrap=True))
                            with Horizontal(classes="field"):
                                yield Checkbox(tr("sp_field_enabled"), id="entry-enabled")
                                yield Checkbox(tr("sp_field_constant"), id="entry-constant")
                        yield self._field(field, Input("", id=widget_id), problem=True)
            yield Footer()

    @staticmethod
    def _field(field: str, widget, problem: bool = False) -> Vertical:
        """The field's name above it, its problem (hidden while there is none) under it."""
        parts = [Label(field_label(field)), widget]
        if problem:
            parts.append(Static("", classes="problem", id=f"{widget.id}-problem", markup=False))
        return Vertical(*parts, classes="field")

    def on_mount(self) -> None:
        self._show_entry()
        self._saved_values = self._values()  # as the widgets hold them (a TextArea may normalise line ends)
        self.set_focus(self.query_one("#memory", TextArea), scroll_visible=False)  # it is at the top

    # -- the selected entry ----------------------------------------------------------

    def _entry_prompt(self, draft: EntryDraft) -> Content:
        flags = "" if draft.enabled else " " + tr("sp_entry_off")
        flags += " " + tr("sp_entry_always") if draft.constant else ""
        mark = "⚠ " if draft.problems() else ("● " if draft.enabled else "○ ")
        return Content(mark + (draft.name.strip() or tr("sp_unnamed")) + flags)

    def _store_fields(self) -> None:
        """The widgets' values into the selected entry's draft."""
        if self.current is None:
            return
        draft = self.drafts[self.current]
        for field, widget_id in ENTRY_INPUTS.items():
            setattr(draft, field, self.query_one(f"#{widget_id}", Input).value)
        for field, widget_id in ENTRY_CHECKS.items():
            setattr(draft, field, self.query_one(f"#{widget_id}", Checkbox).value)
        draft.text = self.query_one("#entry-text", TextArea).text

    def _show_entry(self) -> None:
        """The selected entry's draft into the widgets (the form hidden when there is none)."""
        has_entry = self.current is not None
        self.query_one("#entry-fields").display = has_entry
        self.query_one("#lore-list").display = bool(self.drafts)
        self.query_one("#no-entries").display = not self.drafts
        if not has_entry:
            return
        draft = self.drafts[self.current]
        for field, widget_id in ENTRY_INPUTS.items():
            self.query_one(f"#{widget_id}", Input).value = getattr(draft, field)
        for field, widget_id in ENTRY_CHECKS.items():
            self.query_one(f"#{widget_id}", Checkbox).value = getattr(draft, field)
        area = self.query_one("#entry-text", TextArea)
        if area.text != draft.text:
            area.load_text(draft.text)
        self._check_entry()

    def _select(self, index: int | None) -> None:
        """Show entry `index` (the shown one's fields kept in its draft first)."""
        self._store_fields()
        self.current = index
        self._show_entry()
        if index is not None:
            self.query_one("#lore-list", OptionList).highlighted = index

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index != self.current and event.option_index < len(self.drafts):
            self._select(event.option_index)

    # -- checking as typed -----------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.input.id == "note-depth":
            self._explain(event.input, int_problem(event.input.value, minimum=0))
        else:
            self._check_entry()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._check_entry()

    def _check_entry(self) -> None:
        """Explain the selected entry's invalid fields; its line in the list follows its name and flags."""
        if self.current is None:
            return
        self._store_fields()
        draft = self.drafts[self.current]
        problems = draft.problems()
        for field, widget_id in ENTRY_INPUTS.items():
            self._explain(self.query_one(f"#{widget_id}", Input), problems.get(field))
        self.query_one("#lore-list", OptionList).replace_option_prompt_at_index(self.current,
                                                                                self._entry_prompt(draft))

    def _explain(self, field: Input, problem: str | None) -> None:
        field.set_class(problem is not None, "-invalid")
        view = self.query_one(f"#{field.id}-problem", Static)
        view.update(problem or "")
        view.display = problem is not None

    def _first_problem(self) -> tuple[int | None, str, str] | None:
        """(entry index or None, widget id, what to say) of the first invalid field, or None."""
        depth = self.query_one("#note-depth", Input)
        if (problem := int_problem(depth.value, minimum=0)) is not None:
            return None, "note-depth", tr("sp_invalid", field=tr(LABELS["depth"]), problem=problem)
        for index, draft in enumerate(self.drafts):
            for field, problem in draft.problems().items():
                return index, ENTRY_INPUTS[field], tr("sp_invalid_entry", name=draft.name.strip() or tr("sp_unnamed"),
                                                      field=tr(LABELS[field]), problem=problem)
        return None

    # -- the story -------------------------------------------------------------------

    def _values(self) -> tuple:
        """Everything editable, as typed (to tell unsaved changes)."""
        if self.is_mounted:
            self._store_fields()
            memory = self.query_one("#memory", TextArea).text
            note = self.query_one("#note-text", TextArea).text
            depth = self.query_one("#note-depth", Input).value
            unit = self.query_one("#note-unit", Select).value
        else:
            note_ = self.story.authors_note
            memory, note, depth, unit = self.story.memory, note_.text, str(note_.depth), note_.unit
        return memory, note, depth, unit, tuple(draft.values() for draft in self.drafts)

    @property
    def dirty(self) -> bool:
        return self._values() != self._saved_values

    def built_story(self) -> Story:
        """The Story the fields describe (only when nothing is invalid); [generation] as given."""
        self._store_fields()
        note = replace(self.story.authors_note, text=self.query_one("#note-text", TextArea).text,
                       depth=int(self.query_one("#note-depth", Input).value.strip()),
                       unit=self.query_one("#note-unit", Select).value)
        return replace(self.story, memory=self.query_one("#memory", TextArea).text, authors_note=note,
                       lore=tuple(draft.entry() for draft in self.drafts))

    def _say(self, message: str, error: bool = False) -> None:
        status = self.query_one("#story-status", Static)
        status.update(message)
        status.set_class(error, "-error")
        status.display = bool(message)

    # -- actions ---------------------------------------------------------------------

    def action_save(self) -> None:
        self._store_fields()
        if (problem := self._first_problem()) is not None:
            index, widget_id, message = problem
            if index is not None and index != self.current:
                self._select(index)
            self._say(message, error=True)
            self.query_one(f"#{widget_id}").focus()
            return
        story = self.built_story()
        error = self.save_story(story)
        if error:
            self._say(tr("sp_save_failed", error=error), error=True)
            return
        self.saved = story
        self._saved_values = self._values()
        self._say(tr("sp_saved", path=str(self.story_path)))

    def action_close(self) -> None:
        if not self.dirty:
            self.dismiss(self.saved)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(self.saved)

        self.app.push_screen(ConfirmDialog(tr("sp_discard")), answered)

    def action_new_entry(self) -> None:
        self._store_fields()
        draft = EntryDraft.of(LoreEntry(name=tr("sp_new_entry", number=len(self.drafts) + 1)))
        self.drafts.append(draft)
        self.query_one("#lore-list", OptionList).add_option(Option(self._entry_prompt(draft)))
        self._select(len(self.drafts) - 1)
        name = self.query_one("#entry-name", Input)
        name.focus()
        name.action_select_all()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "delete_entry":  # only on the list (delete edits text everywhere else)
            return self.current is not None and getattr(self.focused, "id", None) == "lore-list"
        return True

    def action_delete_entry(self) -> None:
        if self.current is None:
            return
        index = self.current
        name = self.drafts[index].name.strip() or tr("sp_unnamed")

        def answered(delete: bool | None) -> None:
            if not delete or index >= len(self.drafts):
                return
            self.drafts.pop(index)
            self.current = None  # the deleted entry's fields are not stored anywhere
            entries = self.query_one("#lore-list", OptionList)
            entries.remove_option_at_index(index)
            self._select(min(index, len(self.drafts) - 1) if self.drafts else None)
            entries.focus()

        self.app.push_screen(ConfirmDialog(tr("sp_delete_entry", name=name)), answered)
