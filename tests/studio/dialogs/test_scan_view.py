"""The scan view: progress while the scan runs on the service's thread (escape stops it), then spans, loops and
paragraphs in one list (the worst highlighted, a 20,000-paragraph book at once), enter dismissing with the
manuscript position; f7 in the studio moves the editor's cursor there. The fake engine: no math tested here."""

from __future__ import annotations

import time

import pytest

from ai_writer.backends.writing.generation import GenerationService
from ai_writer.backends.writing.scan import Paragraph, Scan, ScanFinished, scan_task
from ai_writer.studio.dialogs.scan_view import ScanView, location_of
from ai_writer.studio.widgets.scan_list import ScanList
from tests.fake_engine import FakeEngine
from tests.studio.dialogs.host import NOT_DISMISSED, DialogHost
from tests.studio.test_app import make_app, ready, wait_until  # noqa: F401 (fixture)

SIZE = (80, 24)
SENTENCE = "他抬头望向远方的山。"
BOOK = "".join(f"　　第{n}段，他走进了房间，四下看了看。{SENTENCE if n % 3 == 0 else ''}\n\n" for n in range(1, 121))


class Host(DialogHost):
    def __init__(self, submit):
        super().__init__(ScanView(submit))


@pytest.fixture
def service_of():
    services = []

    def make(engine) -> GenerationService:
        services.append(GenerationService(engine))
        return services[-1]

    yield make
    for service in services:
        service.close()


def status_text(view: ScanView) -> str:
    return str(view.query_one("#scan-status").content)


def cursor_row(view: ScanView):
    found = view.query_one(ScanList)
    return found.rows[found.cursor]


async def test_progress_then_the_rows_and_enter_on_a_loop_gives_its_position(service_of):
    engine = FakeEngine(delay=0.15)  # each piece of 1024 characters takes a while
    service = service_of(engine)
    app = Host(lambda on_event: service.submit_task(scan_task(BOOK), on_event))
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        assert await wait_until(pilot, lambda: "scanning… 1,024 of" in status_text(view))
        assert view.query_one("ProgressBar").progress >= 1024
        assert await wait_until(pilot, lambda: view.scan is not None)
        await pilot.pause()
        scan = view.scan
        assert str(view.query_one("#scan-title").content) == \
            f"Surprise scan · {scan.bits_per_char:.3f} bits/char · {scan.chars:,} characters"
        rows = view.query_one(ScanList).rows
        headings = [r.text for r in rows if r.kind == "heading"]
        assert headings == [f"Most surprising spans (a character counts above {scan.threshold:.1f} bits)",
                            "Repeated loops", "Paragraphs (line · characters · bits/char)"]
        assert sum(r.position is not None for r in rows) == len(scan.spans) + len(scan.loops) + len(scan.paragraphs)
        loop = next(o for o in scan.loops if o.kind == "sentence")
        assert loop.text == SENTENCE and loop.count == 40
        while cursor_row(view).position != loop.starts[0]:
            before = cursor_row(view)
            await pilot.press("down")
            assert cursor_row(view) is not before
        assert "sentence ×40" in cursor_row(view).text
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: app.result is not NOT_DISMISSED)
    assert app.result == loop.starts[0] and BOOK.startswith(SENTENCE, app.result)


async def test_escape_while_scanning_stops_the_scan(service_of):
    engine = FakeEngine(delay=0.3)
    service = service_of(engine)
    jobs = []
    app = Host(lambda on_event: jobs.append(service.submit_task(scan_task(BOOK * 3), on_event)) or jobs[-1])
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_until(pilot, lambda: "scanning…" in status_text(app.view))
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: app.result is not NOT_DISMISSED)
        assert app.result is None and jobs[0].is_cancelled
        assert jobs[0].wait(5)
    assert engine.tokens_processed < len(BOOK * 3) / 2  # it stopped long before the end


async def test_a_failed_scan_says_why_on_the_status_line(service_of):
    service = service_of(FakeEngine())
    app = Host(lambda on_event: service.submit_task(lambda engine, job: 1 / 0, on_event))
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_until(pilot, lambda: "failed" in status_text(app.view))
        assert status_text(app.view) == "the scan failed: ZeroDivisionError: division by zero"
        assert not app.view.query(ScanList)
        await pilot.press("escape")
        assert await wait_until(pilot, lambda: app.result is None)


def big_scan(count: int) -> Scan:
    """A scan of `count` paragraphs of 30 characters each (no model: the view only shows it)."""
    paragraphs = tuple(Paragraph(2 * i + 1, 32 * i, 32 * i + 30, 31, 31 * (3.0 + (i * 37 % 101) / 50))
                       for i in range(count))
    return Scan(sum(p.bits for p in paragraphs), 31 * count, 10.0, paragraphs, (), ())


async def test_a_book_of_20000_paragraphs_opens_at_once_and_the_worst_are_highlighted(service_of):
    service = service_of(FakeEngine())
    scan = big_scan(20000)
    app = Host(lambda on_event: service.submit_task(lambda engine, job: job.on_event(ScanFinished(job.id, scan)),
                                                    on_event))
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_until(pilot, lambda: app.view.query(ScanList))
        started = time.perf_counter()
        await pilot.pause()
        found = app.view.query_one(ScanList)
        assert time.perf_counter() - started < 0.5
        worst = {r.position for r in found.rows if r.kind == "worst"}
        ranked = sorted(scan.paragraphs, key=lambda p: -p.bits_per_char)
        assert worst == {p.start for p in ranked[:1000]}  # the worst 1 in 20
        # drawn in their own style: a worst row and an ordinary one differ
        first_worst = next(i for i, r in enumerate(found.rows) if r.kind == "worst" and i != found.cursor)
        ordinary = next(i for i, r in enumerate(found.rows) if r.position is not None and not r.kind and i != found.cursor)
        assert list(found.render_line(first_worst))[0].style != list(found.render_line(ordinary))[0].style
        await pilot.press("end")
        assert cursor_row(app.view).position == scan.paragraphs[-1].start
        await pilot.press("pageup")
        assert cursor_row(app.view).position < scan.paragraphs[-1].start
        await pilot.press("home", "enter")
        assert await wait_until(pilot, lambda: app.result is not NOT_DISMISSED)
    assert app.result == scan.paragraphs[0].start  # no spans, no loops: the first row that leads somewhere


def test_location_of_a_position_in_the_editor():
    text = "ab\ncd\r\nef"
    assert [location_of(text, p) for p in (0, 2, 3, 5, 7, 9)] == [(0, 0), (0, 2), (1, 0), (1, 2), (2, 0), (2, 2)]
    assert location_of(text, 100) == (2, 2)


async def test_f7_scans_the_manuscript_and_enter_moves_the_cursor_there(make_app):
    app, _ = make_app(text=BOOK)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        app.editor.move_cursor((0, 0))
        await pilot.press("f7")
        assert await wait_until(pilot, lambda: isinstance(app.screen, ScanView) and app.screen.scan is not None)
        view = app.screen
        await pilot.press("end")  # the last paragraph
        target = cursor_row(view).position
        assert BOOK.startswith("第120段", target)
        await pilot.press("enter")
        assert await wait_until(pilot, lambda: not isinstance(app.screen, ScanView))
        assert app.editor.cursor_location == location_of(BOOK, target) == (238, 2)
        assert app.editor.has_focus


async def test_f7_on_a_manuscript_without_text_says_so_and_opens_nothing(make_app):
    app, path = make_app(text="　　\n\n")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await pilot.press("f7")
        await pilot.pause()
        assert not isinstance(app.screen, ScanView)
        assert app.status.message == f"{path.name}: nothing to scan, it holds no text"
