"""AI-Writer Studio: the Textual app. Thin: language, keys, signals and quitting; the main screen owns the flow."""

from __future__ import annotations

import signal
from pathlib import Path

from textual.app import App, SystemCommand

from studio.config import Config
from studio.i18n import choose_language, set_language, tr
from studio.keys import ACTIONS, describe, keymap
from studio.screens.main_screen import TYPING_REDRAW_INTERVAL, MainScreen  # noqa: F401 (tests tune it)
from studio.terminal_widths import set_ambiguous_width
from studio.textual_compat import install_key_fixes

EXIT_SIGNALS = ("SIGHUP", "SIGTERM", "SIGINT")  # a dropped SSH connection, kill, kill -INT


class StudioApp(App):
    TITLE = "AI-Writer Studio"
    MAIN_SCREEN = MainScreen

    def __init__(self, config: Config, manuscript: str | Path | None = None, data_dir: Path | None = None):
        set_language(choose_language(config.section("studio")["language"]))
        set_ambiguous_width(config.section("studio")["ambiguous_width"])  # before anything is measured
        install_key_fixes()
        super().__init__()
        self.set_keymap(keymap(config.section("keys")))  # the author's keys, by binding id
        self.main = self.MAIN_SCREEN(config, Path(manuscript) if manuscript else None, data_dir)
        self.exit_lines: list[str] = []  # printed by the CLI once the terminal is back to normal
        self._quitting = False

    def get_default_screen(self) -> MainScreen:
        return self.main

    # The main screen's parts, for the CLI, benchmarks and tests.
    @property
    def config(self) -> Config:
        return self.main.config

    @config.setter
    def config(self, value: Config) -> None:
        self.main.config = value

    editor = property(lambda self: self.main.editor)
    candidates = property(lambda self: self.main.candidates)
    status = property(lambda self: self.main.status)
    service = property(lambda self: self.main.service)
    job = property(lambda self: self.main.job)
    buffer = property(lambda self: self.main.buffer)
    path = property(lambda self: self.main.path)

    def on_mount(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for name in EXIT_SIGNALS:
            if hasattr(signal, name):
                try:
                    loop.add_signal_handler(getattr(signal, name), self.exit_on_signal, name)
                except (NotImplementedError, RuntimeError, ValueError):  # not on this platform / thread
                    pass

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        keys = self.config.section("keys")
        for action_id, action, text_key, _ in ACTIONS:
            yield SystemCommand(describe(action_id, text_key), f"{action_id} ({keys[action_id]})",
                                lambda action=action: self.main.run_action(action))
        panel = self.main.candidates
        for title_key, method in (("cmd_regenerate", panel.action_regenerate), ("cmd_reject", panel.action_reject),
                                  ("cmd_partial", panel.action_accept_sentence)):
            yield SystemCommand(tr(title_key), tr(title_key), method)

    # -- ending --------------------------------------------------------------

    def exit_on_signal(self, name: str) -> None:
        """SIGHUP / SIGTERM / SIGINT: save (or write the recovery copy), restore the terminal, exit."""
        if self._quitting:
            return
        self._quitting = True
        error = self.main.save_before_exit()
        self.finish(error, return_code=0 if not error else 1)

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        self.main.action_stop()
        error = self.main.save_before_exit()
        self.finish(error)

    def finish(self, error: str, return_code: int = 0) -> None:
        main = self.main
        if main.service is not None:
            main.service.close(wait=False)  # never block the screen on a model call in flight
        if main.path is not None:
            self.exit_lines.append(tr("exit_manuscript", path=main.path))
        if error:
            self.exit_lines.append(error)
        self.exit(return_code=return_code)
