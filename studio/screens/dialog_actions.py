"""The dialogs the main screen opens on the manuscript, and what their answers do to it.

Each function takes the main screen (studio/screens/main_screen.py): the surprise scan (f7),
the version tree (F3, and restoring a branch from it), the story panel (f4) and the context
viewer (f6). Model code never runs here: the scan runs on the generation service's thread,
the context is planned in a thread worker. The dialogs are imported when first opened, not at start-up.
"""

from __future__ import annotations

from dataclasses import replace

from ai_writer.studio.data.version_tree import Restore, Take
from ai_writer.studio.i18n import tr
from ai_writer.studio.paths import short_path


def open_scan(screen) -> None:
    """The surprise scan of the whole manuscript; enter on a row moves the cursor there."""
    from ai_writer.backends.writing.scan import scan_task
    from ai_writer.studio.dialogs.scan_view import ScanView, location_of

    if screen.service is None:
        screen.say_no_model()
        return
    editor = screen.editor
    text = editor.document.text
    prep = replace(screen.config.generation.text_prep, leading_newline=True)  # as `ai-writer scan`
    if len(prep.prepare(text)) < 2:
        screen.status.message = tr("sc_empty", name=screen.path.name if screen.path else "")
        return
    service = screen.service

    def closed(position: int | None) -> None:
        if position is not None and editor.document.text == text:
            editor.move_cursor(location_of(text, position), center=True)
        editor.focus()
        screen.warm()  # the scan took the model from a read ahead: the next request should not wait for it

    screen.app.push_screen(ScanView(lambda on_event: service.submit_task(scan_task(text, prep), on_event)), closed)


def open_version_tree(screen) -> None:
    """The version tree (studio/dialogs/history_tree.py): restore a branch in place, or insert a candidate."""
    from ai_writer.studio.dialogs.history_tree import HistoryTree

    history = screen.history
    if history is None:
        return
    screen.note_edits()  # the tree is placed in the text as it is now

    def chosen(choice) -> None:
        if isinstance(choice, Restore):
            restore_branch(screen, choice)
        elif isinstance(choice, Take):
            screen.note_edits()
            position = screen.editor.document.get_index_from_location(screen.editor.cursor_location)
            inserted = screen.insert_text(choice.text)
            history.record_outcome(choice.node, choice.candidate, "accepted", position=position, inserted=inserted)

    screen.app.push_screen(HistoryTree(history, screen.editor.text, screen.config.keys), chosen)


def restore_branch(screen, restore: Restore) -> None:
    """A branch of the version tree back in place as one undo step, and saved."""
    editor, document = screen.editor, screen.editor.document
    start, end = document.get_location_from_index(restore.start), document.get_location_from_index(restore.end)
    if document.get_text_range(start, end) != restore.replaced:
        screen.status.message = tr("ht_changed_meanwhile")
        return
    screen.note_edits()
    editor.suggestion = ""
    editor.history.checkpoint()
    editor.replace(restore.text, start, end)
    editor.history.checkpoint()
    screen.history.record_restore(restore)
    screen.status.message = tr("ht_restored", number=restore.candidate + 1)
    screen.save_now()


def open_story_panel(screen) -> None:
    """The story panel: memory, author's note, lorebook; saved to NAME.story.toml."""
    from ai_writer.studio.dialogs.story_panel import StoryPanel

    story = screen.story
    if story is None:
        return
    story.refresh()

    def closed(saved) -> None:
        if saved is not None:
            screen.status.message = tr("story_saved", path=short_path(story.path))
            screen.warm()  # the new memory and lore are read before the next request needs them

    screen.app.push_screen(StoryPanel(story.story, story.path, story.save), closed)


def open_context_view(screen) -> None:
    """Exactly what the next request reads, part by part, and how much of it the cache spares."""
    from ai_writer.studio.dialogs.context_view import ContextView
    from ai_writer.studio.walk_away import call_back

    if screen.service is None:
        screen.say_no_model()
        return
    request, service, app = screen.next_request(), screen.service, screen.app

    def plan_and_show() -> None:
        plan = service.plan(request)  # tokenising a long book: off the UI thread
        call_back(screen, app.push_screen, ContextView(plan.context, plan.total_tokens, plan.cached_tokens))

    screen.run_worker(plan_and_show, thread=True, exclusive=True, group="context")
