"""`ai-writer serve` in a real headless Chromium: typing Chinese, generating, accepting, saving, two
tabs on one file, the token, and what a closed tab or a stopped server leaves on disk."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest

from ai_writer.studio.data.manuscript_lock import ManuscriptLock, lock_path_for
from tests.helpers import wait_until
from tests.studio.web.browser import Tab, http_get, wait_file, websocket_status
from tests.studio.web.conftest import MODEL_STEM, ORIGINAL


def open_tab(browser, url: str) -> Tab:
    tab = Tab(browser.new_page(), url)
    tab.wait_ready(MODEL_STEM)
    return tab


def at_the_end(tab: Tab) -> None:
    tab.click_editor()
    tab.page.keyboard.press("Control+End")


def ime_commit(browser, tab: Tab, pinyin: str, text: str) -> None:
    """What a Chinese input method does: a composition shown while typing pinyin, then the characters."""
    cdp = browser.new_cdp_session(tab.page)
    for end in range(1, len(pinyin) + 1):
        cdp.send("Input.imeSetComposition", {"text": pinyin[:end], "selectionStart": end, "selectionEnd": end})
    time.sleep(0.2)
    assert pinyin not in tab.screen()  # the composition is the browser's: nothing reaches the studio yet
    cdp.send("Input.insertText", {"text": text})


def lock_is_free(path: Path, timeout: float = 10.0) -> bool:
    def free() -> bool:
        try:
            ManuscriptLock.acquire(path).release()
            return True
        except Exception:
            return False
    return wait_until(free, timeout)


def test_typing_chinese_generating_accepting_and_saving_in_the_browser(serve, browser):
    served = serve()
    tab = open_tab(browser, served.url)
    at_the_end(tab)
    ime_commit(browser, tab, "taxiaole", "她笑了")  # an input method's commit
    tab.wait_for("她笑了")  # xterm.js sends a commit a moment later: a key typed within it would go first
    tab.page.keyboard.type("，说")  # characters typed one by one (each an input event, as on-screen keyboards do)
    tab.wait_for("她笑了，说")
    tab.wait_for(lambda text: "unsaved" in "\n".join(text.splitlines()[-3:]), what="'unsaved' on the status line")
    assert served.manuscript.read_text(encoding="utf-8") == ORIGINAL  # nothing saved yet

    tab.page.keyboard.press("Control+g")
    first = tab.finished_candidates(3)
    tab.page.keyboard.press("Alt+1")  # xterm.js sends ESC 1, as terminals do
    tab.wait_for("accepted candidate 1", 5)
    written = ORIGINAL + "她笑了，说" + first[0]["text"]
    wait_file(served.manuscript, written)  # an accept saves at once

    tab.page.keyboard.press("Control+g")
    second = tab.finished_candidates(3)
    tab.page.keyboard.press("Tab")  # into the candidates panel, where a digit takes that candidate
    time.sleep(0.2)
    tab.page.keyboard.press("2")
    tab.wait_for("accepted candidate 2", 5)
    written += second[1]["text"]
    wait_file(served.manuscript, written)

    at_the_end(tab)
    tab.paste("“走吧。”")  # a paste from the clipboard arrives whole (bracketed paste)
    tab.wait_for("“走吧。”")
    tab.page.keyboard.press("Control+s")
    wait_file(served.manuscript, written + "“走吧。”")
    tab.wait_for(lambda text: "unsaved" not in "\n".join(text.splitlines()[-3:]), 5,
                 what="the status line to say saved")

    wide = tab.columns()
    tab.page.set_viewport_size({"width": 900, "height": 600})  # a smaller window: the studio is laid out again
    assert wait_until(lambda: tab.columns() < wide, 5), "xterm.js did not fit the smaller window"
    narrow = tab.columns()
    tab.wait_for(lambda text: "─" * narrow in text.splitlines() and "─" * wide not in text, 5,
                 what=f"the studio redrawn {narrow} columns wide")


def test_a_second_tab_on_the_file_is_read_only_and_the_first_tab_keeps_the_file(serve, browser):
    served = serve()
    first = open_tab(browser, served.url)
    at_the_end(first)
    first.page.keyboard.type("甲")
    first.wait_for("unsaved")

    # another tab of the same browser on the same file (wide: the status line names the whole path and the PID)
    page = browser.new_page()
    page.set_viewport_size({"width": 1900, "height": 800})
    second = Tab(page, served.url)
    shown = second.wait_for(re.compile(r"read-only: .*another studio \(process \d+\)").search, 40,
                            what="the status line saying read-only and naming the other studio's process")
    holder = int(re.search(r"another studio \(process (\d+)\)", shown).group(1))
    assert lock_path_for(served.manuscript).read_text().strip() == str(holder)  # the first tab's studio holds it
    if sys.platform.startswith("linux"):
        command = Path(f"/proc/{holder}/cmdline").read_bytes().split(b"\0")
        assert b"ai_writer.studio.web.child" in command and str(served.manuscript).encode() in command

    at_the_end(second)
    second.page.keyboard.type("乙")
    second.page.keyboard.press("Control+s")
    time.sleep(0.5)
    assert "乙" not in second.screen()  # read-only: the keys change nothing
    assert served.manuscript.read_text(encoding="utf-8") == ORIGINAL

    first.page.keyboard.press("Control+s")
    wait_file(served.manuscript, ORIGINAL + "甲")

    first.page.keyboard.type("丙")
    first.wait_for("甲丙")
    first.page.close()  # closing the tab hangs up on its studio, which saves
    wait_file(served.manuscript, ORIGINAL + "甲丙")
    second.page.close()
    assert lock_is_free(served.manuscript), "a studio still holds the manuscript after both tabs closed"
    assert served.manuscript.read_text(encoding="utf-8") == ORIGINAL + "甲丙"  # the read-only tab wrote nothing
    assert served.process.poll() is None  # the server serves on


def test_with_a_token_only_the_printed_url_opens_the_studio(serve, browser, chromium):
    served = serve("--token")
    match = served.wait_line(r"a token is required \(--token\).* open (http://\S+\?token=(\S+))$")
    token_url, token = match.group(1), match.group(2)
    assert sum(token in line for line in served.lines) == 1  # printed once

    refused = browser.new_page()
    response = refused.goto(served.url)
    assert response.status == 403 and "a token is required" in refused.content()
    assert http_get(served.local_url + "static/js/textual.js")[0] == 403
    assert websocket_status(served.port, origin=f"http://127.0.0.1:{served.port}") == 403

    tab = open_tab(browser, token_url)
    assert tab.page.url == served.url  # the token left the address bar: it is a cookie now
    cookie, = [c for c in browser.cookies() if c["name"] == f"ai_writer_token_{served.port}"]
    assert cookie["value"] == token and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    at_the_end(tab)
    tab.page.keyboard.type("丁")
    tab.wait_for("丁")
    tab.page.keyboard.press("Control+q")  # quitting in the tab saves, ends that studio, and the page says so
    wait_file(served.manuscript, ORIGINAL + "丁")
    tab.page.wait_for_selector("body.-closed", timeout=10_000)
    assert tab.page.locator(".closed-dialog .message").inner_text() == "Session ended."
    assert lock_is_free(served.manuscript)

    other = chromium.new_context()  # another browser profile: no cookie
    try:
        assert other.new_page().goto(served.url).status == 403
    finally:
        other.close()


STOPS = {"ctrl+c (SIGINT)": signal.SIGINT}
if sys.platform.startswith("linux"):  # the kernel hangs up on the studios (prctl PR_SET_PDEATHSIG)
    STOPS["killed (SIGKILL)"] = signal.SIGKILL


@pytest.mark.parametrize("how", STOPS)
def test_a_stopped_server_leaves_every_open_tab_saved(serve, browser, how):
    served = serve()
    tab = open_tab(browser, served.url)
    at_the_end(tab)
    tab.page.keyboard.type("戊")
    tab.wait_for("unsaved")
    code = served.stop(STOPS[how])
    assert code == (0 if STOPS[how] == signal.SIGINT else -signal.SIGKILL), served.stderr()
    wait_file(served.manuscript, ORIGINAL + "戊")
    assert lock_is_free(served.manuscript), "the studio lived on after the server"
    if STOPS[how] == signal.SIGINT:
        assert "Traceback" not in served.stderr()
