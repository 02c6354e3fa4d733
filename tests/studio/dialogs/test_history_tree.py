"""The version tree dialog (f3) in the studio, driven by keys through Pilot: navigation, the preview,
restore as one undo step, insert at the cursor, favourites, prunes, detached requests, damaged lines."""

from __future__ import annotations

import json

from ai_writer.studio.data.history import history_path_for
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.dialogs.history_tree import HistoryTree
from tests.studio.test_app import MANUSCRIPT, generate, make_app, ready, wait_until  # noqa: F401 (fixture)

SIZE = (100, 30)


def records(path):
    return [json.loads(line) for line in history_path_for(path).read_text(encoding="utf-8").splitlines()]


def label(dialog: HistoryTree) -> str:
    return str(dialog.tree_widget.cursor_node.label)


def preview(dialog: HistoryTree) -> str:
    return str(dialog.query_one("#history-preview").content)


def every_item(dialog: HistoryTree) -> list:
    """The data of every item in the Tree, collapsed ones too."""
    found, stack = [], list(dialog.tree_widget.root.children)
    while stack:
        item = stack.pop()
        found.append(item.data)
        stack.extend(item.children)
    return found


async def open_tree(pilot, app) -> HistoryTree:
    await pilot.press("f3")
    assert await wait_until(pilot, lambda: isinstance(app.screen, HistoryTree))
    await pilot.pause()
    return app.screen


async def go_to(pilot, dialog: HistoryTree, data, key="up") -> None:
    """Press `key` until the cursor is on the item with this data (as an author would)."""
    for _ in range(40):
        if dialog.highlighted() == data:
            return
        await pilot.press(key)
    assert dialog.highlighted() == data


async def test_navigate_and_preview_a_branch_against_the_manuscript(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        first = await generate(pilot, app)
        await pilot.press("alt+2")
        second = await generate(pilot, app)
        ids = [r["id"] for r in records(path) if r["type"] == "request"]
        dialog = await open_tree(pilot, app)
        assert dialog.highlighted() == ("node", ids[1])  # the latest request
        assert "2 requests · 0 detached · 0 pruned" in str(dialog.query_one("#history-title").content)
        await pilot.press("down")
        assert dialog.highlighted() == ("candidate", ids[1], 0)
        assert label(dialog).startswith("  1 " + second[0][:10])
        assert "Now, from" in preview(dialog) and second[0] in preview(dialog)  # nothing there yet: (nothing)
        assert "(nothing)" in preview(dialog)
        await go_to(pilot, dialog, ("candidate", ids[0], 1))
        assert label(dialog).startswith("✓ 2 ") and "accepted" in label(dialog)
        assert "The branch is the text there now." in preview(dialog)
        await pilot.press("up")
        assert dialog.highlighted() == ("candidate", ids[0], 0)
        shown = preview(dialog)
        assert first[0] in shown and first[1] in shown  # the branch, and the text it would replace
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, HistoryTree))
        assert app.editor.text == MANUSCRIPT + first[1]


async def test_restore_is_one_undo_step_and_is_recorded(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        await pilot.press("alt+1")
        await pilot.press(*"他说")  # typed after the accept: kept by the restore
        dialog = await open_tree(pilot, app)
        (request_id,) = [r["id"] for r in records(path) if r["type"] == "request"]
        await go_to(pilot, dialog, ("candidate", request_id, 2), key="down")
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, HistoryTree))
        assert app.editor.text == MANUSCRIPT + texts[2] + "他说"
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == app.editor.text)
        last = records(path)[-1]
        assert (last["type"], last["candidate"], last["position"], last["removed_length"]) == \
            ("restore", 2, len(MANUSCRIPT), len(texts[0]))
        assert [r["type"] for r in records(path)][-2] == "edit"  # the typing, recorded before it
        await pilot.press("ctrl+z")  # one step back to the text before the restore
        assert app.editor.text == MANUSCRIPT + texts[0] + "他说"
        await pilot.press("ctrl+y")
        assert app.editor.text == MANUSCRIPT + texts[2] + "他说"
        dialog = await open_tree(pilot, app)
        await go_to(pilot, dialog, ("candidate", request_id, 2), key="down")
        assert label(dialog).startswith("✓ 3 ") and "restored" in label(dialog)
        await go_to(pilot, dialog, ("candidate", request_id, 0))
        assert not label(dialog).startswith("✓")


async def test_insert_at_the_cursor_and_a_detached_request(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        await pilot.press("alt+1")
    # Another program rewrote the start: the request is detached, not lost.
    changed = "　　序章\n" + path.read_text(encoding="utf-8")[len("　　第一章　天才少年\n"):]
    path.write_text(changed, encoding="utf-8")
    again, _ = make_app(text=None)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot, again)
        again.editor.move_cursor((0, 0))
        dialog = await open_tree(pilot, again)
        assert "detached" in label(dialog)
        await pilot.press("down", "down")
        assert "Detached" in preview(dialog)
        await pilot.press("enter")  # cannot be restored in place: nothing changes
        await pilot.pause(0.1)
        assert isinstance(again.screen, HistoryTree) and again.editor.text == changed
        await pilot.press("i")  # but it can be inserted at the cursor
        assert await wait_until(pilot, lambda: not isinstance(again.screen, HistoryTree))
        assert again.editor.text == texts[1] + changed
        last = records(path)[-1]
        assert (last["type"], last["action"], last["candidate"], last["position"]) == ("outcome", "accepted", 1, 0)


async def test_favourite_and_prune(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await generate(pilot, app)
        await pilot.press("alt+1")
        await generate(pilot, app)
        first, second = [r["id"] for r in records(path) if r["type"] == "request"]
        dialog = await open_tree(pilot, app)
        await go_to(pilot, dialog, ("candidate", first, 2))
        await pilot.press("f")
        assert label(dialog).endswith(" ★")
        assert records(path)[-1] == {**records(path)[-1], "type": "mark", "id": first, "candidate": 2, "favourite": True}
        await pilot.press("f")
        assert not label(dialog).endswith(" ★") and records(path)[-1]["favourite"] is False
        await pilot.press("f")
        await go_to(pilot, dialog, ("node", second), key="down")
        await pilot.press("delete")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # asked first: no keeps it
        assert await wait_until(pilot, lambda: app.screen is dialog)
        assert records(path)[-1]["type"] == "mark"
        await pilot.press("delete")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        assert await wait_until(pilot, lambda: app.screen is dialog and records(path)[-1]["type"] == "prune")
        await pilot.pause()
        assert "1 pruned" in str(dialog.query_one("#history-title").content)
        shown = []
        for _ in range(12):
            shown.append(dialog.highlighted())
            await pilot.press("up")
        assert ("node", second) not in shown and ("node", first) in shown
        await pilot.press("escape")
        dialog = await open_tree(pilot, app)  # again: still favourite, still pruned
        await go_to(pilot, dialog, ("candidate", first, 2), key="down")
        assert label(dialog).endswith(" ★")
        assert ("node", second) not in every_item(dialog) and ("node", first) in every_item(dialog)


async def test_no_history_and_a_damaged_line(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        dialog = await open_tree(pilot, app)
        assert str(dialog.query_one("#history-title").content) == "No history yet."
        await pilot.press("escape")
        await generate(pilot, app)
        with open(history_path_for(path), "ab") as f:
            f.write(b'{"type": "outcome", "id": "x", "candid\n')
        dialog = await open_tree(pilot, app)
        warning = str(dialog.query_one("#history-warnings").content)
        assert warning.startswith("1 damaged history lines skipped: ") and "line 2" in warning
        assert dialog.highlighted()[0] == "node"
