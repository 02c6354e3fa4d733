"""docs/browser.png: the studio in Chromium at 1280 x 800, candidates showing, on the bundled model.

    .venv/bin/python -m tests.studio.web.make_screenshot [OUT.png]

`ai-writer serve` on a short manuscript in a temporary folder, one tab, ctrl+g, and a screenshot
once the candidates have finished. Needs chromium and a CJK font (fonts-wqy-microhei), as .ci/run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.helpers import REPO
from tests.studio.web.browser import Served, Tab, find_chromium
from tests.terminal.harness import write_config

BUNDLED = REPO / "models" / "bundled" / "zh-novel-rwkv7.safetensors"
MANUSCRIPT = ("　　却说那日天色将晚，李生独自一人走到园中，只见月色朦胧，花影摇动。\n"
              "　　忽听得假山背后有人低声叹息，李生心中纳闷，便悄悄走近前去，")


def main(out: Path) -> int:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "novel.txt").write_text(MANUSCRIPT, encoding="utf-8")
        config = write_config(root / "config.toml", BUNDLED,
                              generation={"candidates": 3, "length": 60, "banned_chars": "\n"},
                              sampling={"seed": 11}, studio={"autosave_seconds": 3600.0})
        served = Served(root, config, root / "novel.txt")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=find_chromium(), headless=True,
                                                     args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                tab = Tab(page, served.url)
                tab.wait_ready(BUNDLED.stem, timeout=60)
                tab.click_editor()
                page.keyboard.press("Control+End")
                page.keyboard.press("Control+g")
                tab.finished_candidates(3, timeout=60)
                page.screenshot(path=str(out))
                browser.close()
        finally:
            served.stop()
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "docs" / "browser.png")))
