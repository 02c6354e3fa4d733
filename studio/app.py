"""AI-Writer Studio: the Textual app. Thin: language, keys, signals and quitting; the main screen owns the flow."""

from __future__ import annotations

import signal
from pathlib import Path

from textual.app import App, SystemCommand

from ai_writer.studio.config import Config
from ai_writer.studio.data.manuscript_file import NO_FILE, ManuscriptError, save_atomic
from ai_writer.studio.i18n import choose_language, set_language, tr
from ai_writer.studio.keys import ACTIONS, describe, keymap
from ai_writer.studio.screens.main_screen import MainScreen
from ai_writer.studio.terminal_widths import set_ambiguous_width
from ai_writer.studio.textual_compat import install_key_fixes

EXIT_SIGNALS = ("SIGHUP", "SIGTERM", "SIGINT")  # a dropped SSH connection, kill, kill -INT


class StudioApp(App):
    TITLE = "AI-Writer Studio"
    MAIN_SCREEN = MainScreen

    def __init__(self, config: Config, manuscript: str | Path | None = None, data_dir: Path | None = None,
                 engine_loader=None):
        set_language(choose_language(config.studio.language))
        set_ambiguous_width(config.studio.ambiguous_width)  # before anything is measured
        install_key_fixes()
        super().__init__()
        self.set_keymap(keymap(config.keys))  # the author's keys, by binding id
        # engine_loader: [model] section dict -> engine (LoadError on failure); None: backends.load
        self.main = self.MAIN_SCREEN(config, Path(manuscript) if manuscript else None, data_dir, engine_loader)
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
        keys = self.config.keys
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
        self.main.action_stop()
        finished = self.main.save_before_exit()
        if finished is not None and not finished.saved and finished.recovery is None:
            kept = last_resort_copy(self.main.editor.text, self.main.path)  # nobody is there to ask
            self.finish(tr("kept_in_last_resort", path=kept) if kept else finished.error, return_code=1)
            return
        self.finish(finished.error if finished is not None else "", return_code=0)

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self.main.action_stop()
        finished = self.main.save_before_exit()
        if finished is not None and not finished.saved and finished.recovery is None:
            self.ask_where_to_save(finished.error)  # saved nowhere: never quit and lose it
            return
        self._quitting = True
        self.finish(finished.error if finished is not None else "")

    def ask_where_to_save(self, error: str) -> None:
        from ai_writer.studio.dialogs.open_file import OpenFileDialog

        main = self.main
        main.status.message = tr("quit_refused", error=error)

        def chosen(where: str | None) -> None:
            if not where:
                return
            target = Path(where).expanduser()
            try:
                save_atomic(target, main.editor.text, expected=NO_FILE)
            except ManuscriptError as exc:
                main.status.message = tr("quit_refused", error=exc)
                return
            self._quitting = True
            self.finish(tr("saved_elsewhere", path=target))

        self.push_screen(OpenFileDialog(str(Path.home()) + "/", tr("save_where_prompt"), tr("save")), chosen)

    def finish(self, error: str, return_code: int = 0) -> None:
        main = self.main
        if main.service is not None:
            main.service.close(wait=False)  # never block the screen on a model call in flight
        if main.path is not None:
            self.exit_lines.append(tr("exit_manuscript", path=main.path))
            if main.file.save_to is not None:
                self.exit_lines.append(tr("exit_beside", path=main.file.save_to))
        if error:
            self.exit_lines.append(error)
        self.exit(return_code=return_code)


def last_resort_copy(text: str, path: Path | None) -> Path | None:
    """After the file and the recovery copy failed: the text in the home folder or the temp folder."""
    import os
    import tempfile

    name = f"{path.stem if path else 'untitled'}-unsaved-{os.getpid()}.txt"
    for folder in (Path.home(), Path(tempfile.gettempdir())):
        try:
            save_atomic(folder / name, text, expected=NO_FILE)
            return folder / name
        except (ManuscriptError, OSError):
            continue
    return None
