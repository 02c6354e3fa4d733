"""The story panel on its own, driven by keys at 80x24: every field, entries added and deleted,
invalid values blocking the save with their reason, unsaved changes asked about on escape."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.app import App
from textual.keys import _character_to_key
from textual.widgets import Static

from ai_writer.backends.writing.story import AuthorsNote, LoreEntry, Story
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.dialogs.story_panel import StoryPanel, split_keys
from ai_writer.studio.i18n import set_language

SIZE = (80, 24)
PATH = Path("/stories/novel.story.toml")
NOT_DISMISSED = object()
HERO = LoreEntry("林远", keys=("林远",), text="主角，十六岁。")
SECT = LoreEntry("青云门", keys=("青云",), text="门派。", constant=True, priority=2, scan_chars=500)


class Host(App):
    """Pushes the panel at once; `saves` are the stories its save callable got, `answer` what it returns."""

    def __init__(self, story: Story, answer: str | None = None):
        super().__init__()
        self.animation_level = "none"  # scrolling to a focused field is immediate (no waits for animations)
        self.story, self.answer = story, answer
        self.saves: list[Story] = []
        self.result = NOT_DISMISSED

    def save(self, story: Story) -> str | None:
        self.saves.append(story)
        return self.answer

    def on_mount(self) -> None:
        self.push_screen(StoryPanel(self.story, PATH, self.save), self.dismissed)

    def dismissed(self, result) -> None:
        self.result = result

    @property
    def panel(self) -> StoryPanel:
        return next(screen for screen in self.screen_stack if isinstance(screen, StoryPanel))


async def press(pilot, *keys: str) -> None:
    """Keys as a terminal sends them, characters included (Pilot.press drops the character of '，' or '。'),
    each handled before the next (a field selects its text when focus arrives)."""
    for key in keys:
        character = key if len(key) == 1 else {"space": " "}.get(key)
        pilot.app.post_message(events.Key(_character_to_key(key) if len(key) == 1 else key, character))
        await pilot.pause()


async def type_text(pilot, text: str) -> None:
    """Characters into the focused field (one wait: focus does not move while typing)."""
    for char in text:
        pilot.app.post_message(events.Key(char if char.isalnum() else _character_to_key(char), char))
    await pilot.pause()


def field(app: Host, widget_id: str):
    return app.panel.query_one(f"#{widget_id}")


def problem(app: Host, widget_id: str) -> str | None:
    """The reason shown under a field, None while it is hidden."""
    view = app.panel.query_one(f"#{widget_id}-problem", Static)
    return str(view.content) if view.display else None


def status(app: Host) -> str:
    return str(app.panel.query_one("#story-status", Static).content)


async def test_every_field_is_edited_by_keys_and_saved_as_one_story():
    story = Story(memory="林远", authors_note=AuthorsNote("", 300, "chars"), lore=(HERO,),
                  generation={"temperature": 0.8})
    app = Host(story)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.panel.focused.id == "memory"
        await press(pilot, "end")
        await type_text(pilot, "。")
        await press(pilot, "tab")  # the author's note
        await type_text(pilot, "紧凑")
        await press(pilot, "tab", "backspace", "backspace", "backspace")  # depth
        await type_text(pilot, "2")
        await press(pilot, "tab", "enter", "down", "enter")  # unit: the second choice
        await press(pilot, "tab")  # the lore list
        assert app.panel.focused.id == "lore-list"
        await press(pilot, "tab", "end")  # name
        await type_text(pilot, "哥")
        await press(pilot, "tab", "end")  # keys: a fullwidth comma and a regex with a comma in it
        await type_text(pilot, "，/远{1,2}/")
        await press(pilot, "tab")
        await type_text(pilot, "青云")
        await press(pilot, "tab")
        await type_text(pilot, "梦, 醒")
        await press(pilot, "tab", "end")  # text
        await type_text(pilot, "!")
        await press(pilot, "tab", "space")  # enabled -> off
        await press(pilot, "tab", "space")  # constant -> on
        await press(pilot, "tab", "backspace")  # priority
        await type_text(pilot, "-3")
        await press(pilot, "tab", "backspace", "backspace", "backspace", "backspace")  # scan
        await type_text(pilot, "50")
        assert app.panel.focused.id == "entry-scan"
        assert app.panel.can_view_entire(app.panel.focused)  # scrolled to at 80x24
        assert app.panel.dirty
        await press(pilot, "ctrl+s")
        await pilot.pause()
        expected = Story(memory="林远。", authors_note=AuthorsNote("紧凑", 2, "paragraphs"),
                         lore=(LoreEntry("林远哥", keys=("林远", "/远{1,2}/"), text="主角，十六岁。!",
                                         secondary_keys=("青云",), exclude_keys=("梦", "醒"), enabled=False,
                                         constant=True, priority=-3, scan_chars=50),),
                         generation={"temperature": 0.8})
        assert app.saves == [expected]
        assert status(app) == f"saved to {PATH}"
        assert not app.panel.dirty
        await press(pilot, "escape")  # nothing unsaved: closes at once
        await pilot.pause()
        assert app.result == expected


async def test_entries_are_added_switched_and_deleted_with_a_question():
    app = Host(Story(lore=(HERO, SECT)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        entries = field(app, "lore-list")
        assert entries.option_count == 2
        await press(pilot, "ctrl+n")  # a new entry, its name selected to be typed over
        await pilot.pause()
        assert entries.option_count == 3 and app.panel.focused.id == "entry-name"
        assert field(app, "entry-name").value == "new entry 3"
        await type_text(pilot, "王五")
        await press(pilot, "tab")
        await type_text(pilot, "王")
        assert field(app, "entry-text").text == "" and field(app, "entry-enabled").value
        await press(pilot, "shift+tab", "shift+tab")  # back to the list
        assert app.panel.focused is entries
        assert "王五" in str(entries.get_option_at_index(2).prompt)
        await press(pilot, "up")  # the second entry's fields
        await pilot.pause()
        assert field(app, "entry-name").value == "青云门" and field(app, "entry-keys").value == "青云"
        assert field(app, "entry-constant").value and field(app, "entry-priority").value == "2"
        assert field(app, "entry-scan").value == "500" and field(app, "entry-text").text == "门派。"
        await press(pilot, "delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog) and "青云门" in str(app.screen.question)
        await press(pilot, "n")  # kept
        await pilot.pause()
        assert entries.option_count == 3
        await press(pilot, "delete")
        await pilot.pause()
        await press(pilot, "y")
        await pilot.pause()
        assert entries.option_count == 2
        assert field(app, "entry-name").value == "王五"  # the entry after it is shown
        assert app.panel.focused is entries
        await press(pilot, "tab", "home", "delete")  # delete in a text field edits it, never an entry
        assert field(app, "entry-name").value == "五" and entries.option_count == 2
        await press(pilot, "ctrl+s")
        await pilot.pause()
        assert app.saves == [Story(lore=(HERO, LoreEntry("五", keys=("王",))))]


async def test_a_story_without_entries_shows_no_entry_fields_until_one_is_added():
    app = Host(Story())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not field(app, "entry-fields").display and field(app, "no-entries").display
        await press(pilot, "ctrl+n")
        await pilot.pause()
        assert field(app, "entry-fields").display and not field(app, "no-entries").display
        await press(pilot, "ctrl+s")
        await pilot.pause()
        assert app.saves == [Story(lore=(LoreEntry("new entry 1"),))]


INVALID = [  # (field, what is typed, the reason shown)
    ("note-depth", "-1", "must be 0 or more, not -1"),
    ("note-depth", "abc", "abc is not a whole number"),
    ("entry-priority", "1.5", "1.5 is not a whole number"),
    ("entry-scan", "-5", "must be 0 or more, not -5"),
    ("entry-scan", "", "a whole number is needed"),
    ("entry-name", "  ", "an entry needs a name"),
    ("entry-keys", "张三, /[李/", "/[李/"),
    ("entry-secondary", "/(/", "/(/"),
    ("entry-exclude", "/(/", "/(/"),
]


async def test_an_invalid_value_is_explained_and_blocks_saving():
    app = Host(Story(lore=(HERO,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for widget_id, typed, reason in INVALID:
            box = field(app, widget_id)
            box.focus()
            await pilot.pause()
            box.clear()
            await type_text(pilot, typed)
            assert reason in problem(app, widget_id), widget_id
            assert box.has_class("-invalid")
            await press(pilot, "ctrl+s")
            assert app.saves == [], widget_id
            assert status(app).startswith("not saved: ") and reason in status(app)
            assert app.panel.focused is box
            box.clear()
            await type_text(pilot, "7")
            assert problem(app, widget_id) is None and not box.has_class("-invalid")
            await press(pilot, "ctrl+s")
            assert len(app.saves) == 1, widget_id
            app.saves.clear()


async def test_a_bad_regex_names_its_problem():
    app = Host(Story(lore=(HERO,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        keys = field(app, "entry-keys")
        keys.value = "/a(/"
        await pilot.pause()
        assert "/a(/" in problem(app, "entry-keys")
        assert "missing )" in problem(app, "entry-keys")  # the regex engine's reason, not just "invalid"
        assert "⚠" in str(field(app, "lore-list").get_option_at_index(0).prompt)


async def test_an_invalid_field_in_another_entry_blocks_saving_and_is_shown():
    app = Host(Story(lore=(HERO, SECT)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        field(app, "entry-priority").value = "high"  # entry 1 (shown first)
        field(app, "lore-list").focus()
        await press(pilot, "down")  # entry 2
        await pilot.pause()
        assert field(app, "entry-name").value == "青云门" and problem(app, "entry-priority") is None
        await press(pilot, "ctrl+s")
        await pilot.pause()
        assert app.saves == []
        assert status(app) == "not saved: entry 林远: Priority: high is not a whole number"
        # Back on the first entry, its half-typed value as it was, focused.
        assert field(app, "entry-name").value == "林远" and field(app, "entry-priority").value == "high"
        assert app.panel.focused.id == "entry-priority"
        assert problem(app, "entry-priority") == "high is not a whole number"


async def test_a_failed_save_is_shown_and_the_panel_stays():
    app = Host(Story(memory="x"), answer="novel.story.toml: cannot save: permission denied")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_text(pilot, "y")
        await press(pilot, "ctrl+s")
        await pilot.pause()
        assert len(app.saves) == 1 and app.saves[0].memory == "yx"
        assert status(app) == "NOT SAVED: novel.story.toml: cannot save: permission denied"
        assert app.panel.query_one("#story-status").has_class("-error")
        assert isinstance(app.screen, StoryPanel) and app.panel.dirty
        await press(pilot, "escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "y")
        await pilot.pause()
        assert app.result is None  # never saved


async def test_escape_with_unsaved_changes_asks_and_returns_the_last_saved_story():
    app = Host(Story(memory="x"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await type_text(pilot, "a")
        await press(pilot, "escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "n")  # stay: nothing lost
        await pilot.pause()
        assert isinstance(app.screen, StoryPanel) and field(app, "memory").text == "ax"
        await press(pilot, "ctrl+s")
        await pilot.pause()
        await type_text(pilot, "b")  # changed again after the save
        await press(pilot, "escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "y")
        await pilot.pause()
        assert app.result == Story(memory="ax")
        assert [s.memory for s in app.saves] == ["ax"]


async def test_escape_without_changes_closes_at_once_with_none():
    app = Host(Story(memory="x\r\ny", lore=(HERO,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await press(pilot, "escape")
        await pilot.pause()
        assert app.result is None and app.saves == []


async def test_the_panel_speaks_chinese():
    set_language("zh")
    app = Host(Story(lore=(HERO,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert str(app.panel.query_one("#story-title", Static).content) == "故事：novel.story.toml"
        field(app, "entry-scan").value = "-1"
        await pilot.pause()
        assert problem(app, "entry-scan") == "必须大于或等于 0，而不是 -1"


async def test_deleting_the_last_entry_hides_the_entry_fields_and_saves_no_lore():
    app = Host(Story(memory="m", lore=(HERO,)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        field(app, "lore-list").focus()
        await press(pilot, "delete", "y")
        assert app.panel.drafts == [] and not field(app, "entry-fields").display
        assert field(app, "no-entries").display
        await press(pilot, "ctrl+s")
        assert app.saves == [Story(memory="m")]


@pytest.mark.parametrize("raw, keys", [
    ("张三, 李四，王五", ("张三", "李四", "王五")),
    ("/a{1,3}/, b", ("/a{1,3}/", "b")),
    ("/甲，乙/i，丙", ("/甲，乙/i", "丙")),
    ("/abc, d", ("/abc", "d")),  # never closed: plain keys
    (" , ，,", ()),
])
def test_keys_split_on_both_commas_but_not_inside_a_regex(raw, keys):
    assert split_keys(raw) == keys
