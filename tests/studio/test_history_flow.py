"""What the main screen writes to NAME.history.jsonl: requests placed in the manuscript, accepts with
where they went in, the author's edits between requests, an accept before the request finished, a reload."""

from __future__ import annotations

import json
import time

from ai_writer.studio.data.history import HistoryLog, history_path_for
from ai_writer.studio.data.version_tree import build_tree
from tests.studio.test_app import MANUSCRIPT, generate, make_app, ready, wait_until  # noqa: F401 (fixture)

SIZE = (100, 30)


def records(path):
    return [json.loads(line) for line in history_path_for(path).read_text(encoding="utf-8").splitlines()]


async def test_requests_accepts_and_the_edits_between_them(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        first = await generate(pilot, app)
        await pilot.press("alt+2")
        await generate(pilot, app)  # straight on from the accept: its parent
        await pilot.press("alt+1")
        app.editor.move_cursor((1, 4))
        await pilot.press(*"着")  # typed in the middle: an edit record before the next request
        app.editor.move_cursor(app.editor.document.end)
        await generate(pilot, app)
        kinds = [(r["type"], r.get("action")) for r in records(path)]
        assert kinds == [("request", None), ("outcome", "accepted"), ("request", None), ("outcome", "accepted"),
                         ("edit", None), ("request", None)]
        one, accept, two, _, edit, three = records(path)
        assert one["position"] == len(MANUSCRIPT) and one["parent"] is None
        assert accept["position"] == len(MANUSCRIPT) and "inserted" not in accept  # inserted as it was
        assert two["position"] == len(MANUSCRIPT) + len(first[1]) and two["parent"] == [one["id"], 1]
        assert (edit["position"], edit["removed"], edit["inserted"], edit["length"]) == \
            (len("　　第一章　天才少年\n　　他抬"), "", "着", len(app.editor.text))
        assert three["parent"] == [two["id"], 0]  # the text before the cursor still ends with that accept
        tree = build_tree(HistoryLog(history_path_for(path)).read_records(), app.editor.text)
        assert [n.here for n in tree.nodes.values()] == [len(MANUSCRIPT) + 1, two["position"] + 1, three["position"]]
        assert not any(n.detached for n in tree.nodes.values())


async def test_an_accept_while_streaming_records_the_request_first(make_app):
    app, path = make_app(delay=0.05)
    app.config = app.config.with_value("generation", "length", 400)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+g")
        assert await wait_until(pilot, lambda: app.candidates.candidates and len(app.candidates.candidates[0].text) > 3)
        await pilot.press("alt+1")
        assert await wait_until(pilot, lambda: app.job is None or app.job.done)
        await pilot.pause(0.2)
        request, outcome = records(path)[:2]
        assert (request["type"], outcome["type"], outcome["id"]) == ("request", "outcome", request["id"])
        assert app.editor.text == MANUSCRIPT + request["candidates"][0]


async def test_a_reload_records_what_changed_on_disk(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        await pilot.press("alt+1")
        assert await wait_until(pilot, lambda: path.read_text(encoding="utf-8") == MANUSCRIPT + texts[0])
        await pilot.pause(0.1)
        time.sleep(0.01)
        path.write_text("　　序章\n" + MANUSCRIPT + texts[0], encoding="utf-8")  # another program
        await pilot.press("f5")
        assert await wait_until(pilot, lambda: app.editor.text.startswith("　　序章"))
        edit = records(path)[-1]
        assert (edit["type"], edit["position"], edit["inserted"]) == ("edit", 2, "序章\n　　")  # the one span
        tree = build_tree(HistoryLog(history_path_for(path)).read_records(), app.editor.text)
        (node,) = tree.nodes.values()
        assert not node.detached and node.here == len("　　序章\n" + MANUSCRIPT)


async def test_undoing_an_accept_is_an_edit_and_no_change_writes_none(make_app):
    app, path = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        texts = await generate(pilot, app)
        await pilot.press("alt+1")
        await pilot.press("ctrl+z")  # the editor is back to where the history last compared it, the accept undone
        assert app.editor.text == MANUSCRIPT
        await generate(pilot, app)
        await generate(pilot, app)  # nothing changed in between: no edit record
        kinds = [(r["type"], r.get("action")) for r in records(path)]
        assert kinds == [("request", None), ("outcome", "accepted"), ("edit", None), ("request", None),
                         ("request", None)]
        edit = records(path)[2]
        assert (edit["position"], edit["removed"], edit["inserted"]) == (len(MANUSCRIPT), texts[0], "")
