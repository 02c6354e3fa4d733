"""AI-Writer Studio: the Textual app.

Data path: key press -> app action -> GenerationService (its own thread) -> engine
-> token ids -> text pushed into a StreamBuffer -> drained by a timer on the UI
thread (at most max_fps times a second) -> candidates panel and ghost text.
The UI thread never runs model code: the model loads in a thread worker and
generation runs on the service's thread.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingsMap
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from backends.generation import Chunk, Failed, Finished, GenerationRequest, GenerationService, Started
from models.textprep import format_continuation, paragraph_indent
from studio.config import Config
from studio.data.history import HistoryLog, history_path_for, new_request_id
from studio.data.manuscript_file import ManuscriptError, load_manuscript, new_manuscript_path
from studio.dialogs.history_view import HistoryView
from studio.dialogs.open_file import OpenFileDialog
from studio.i18n import choose_language, set_language, tr
from studio.saver import ManuscriptSaver, SaveFinished
from studio.stream_buffer import StreamBuffer
from studio.terminal_widths import set_ambiguous_width
from studio.widgets.candidates import CandidatesPanel
from studio.widgets.editor import ManuscriptEditor
from studio.widgets.settings_panel import SettingsPanel
from studio.widgets.status_line import StatusLine

MIN_WIDTH, MIN_HEIGHT = 60, 16
# While the author types (an edit in the last TYPING_QUIET s), streaming candidates are drawn
# at most once every TYPING_REDRAW_INTERVAL s instead of max_fps times a second: each such
# frame costs the UI thread several ms that a keystroke's frame would otherwise wait behind.
TYPING_QUIET = 0.5
TYPING_REDRAW_INTERVAL = 0.15

# (binding id = [keys] name in config.toml, action, i18n key of its description, shown in the footer)
ACTIONS = [
    ("generate", "generate", "cmd_generate", True),
    ("stop", "stop", "cmd_stop", True),
    *[(f"accept_{n}", f"accept({n})", "cmd_accept", n == 1) for n in range(1, 10)],
    ("save", "save", "cmd_save", True),
    ("open", "open", "cmd_open", False),
    ("quit", "quit", "cmd_quit", True),
    ("settings", "toggle_settings", "cmd_settings", True),
    ("history", "history", "cmd_history", False),
    ("undo", "undo", "cmd_undo", False),
    ("redo", "redo", "cmd_redo", False),
]


def generation_threads(setting: int) -> int:
    """Threads for the model: the setting, or (0) one fewer than the CPUs this process may use, at least 1.

    With every core computing, the UI thread waits for a core on each keystroke while
    candidates stream (and torch's OpenMP threads spin between steps)."""
    if setting > 0:
        return setting
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


def set_model_threads(count: int) -> None:
    """Give torch (if the engine loaded it) `count` intra-op threads. Called before the
    generation thread starts, which takes the count over on its first parallel operation."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


def describe(action_id: str, text_key: str) -> str:
    number = action_id.rsplit("_", 1)[-1] if action_id.startswith("accept_") else ""
    return tr(text_key, number=number) if number else tr(text_key)


DEFAULT_KEYS = {
    "generate": "ctrl+g", "stop": "escape", **{f"accept_{n}": f"alt+{n}" for n in range(1, 10)},
    "save": "ctrl+s", "open": "ctrl+o", "quit": "ctrl+q", "settings": "f2", "history": "f3",
    "undo": "ctrl+z", "redo": "ctrl+y",
}
GLOBAL_KEYS = {"generate", "stop", "save", "quit", "settings", "history", "open"}  # work from any panel


def make_bindings(keys: dict) -> list[Binding]:
    return [
        Binding(keys[action_id], action, describe(action_id, text_key), show=shown, id=action_id,
                priority=action_id in GLOBAL_KEYS or action_id.startswith("accept_"))
        for action_id, action, text_key, shown in ACTIONS
    ]


class MainScreen(Screen):
    """The default screen; tells the app its new size (the app itself is not sent Resize)."""

    def on_resize(self) -> None:
        self.app.check_size()


class StudioApp(App):
    TITLE = "AI-Writer Studio"
    CSS = """
    #main { height: 1fr; }
    #too-small { display: none; padding: 1 2; }
    Screen.-too-small #too-small { display: block; height: 1fr; }
    Screen.-too-small #main, Screen.-too-small SettingsPanel { display: none; }
    """

    BINDINGS = make_bindings(DEFAULT_KEYS)

    def __init__(self, config: Config, manuscript: str | Path | None = None, data_dir: Path | None = None):
        set_language(choose_language(config.section("studio")["language"]))
        set_ambiguous_width(config.section("studio")["ambiguous_width"])  # before anything is measured
        super().__init__()
        self._bindings = BindingsMap(make_bindings(DEFAULT_KEYS))  # descriptions in the chosen language
        self.set_keymap(dict(config.section("keys")))  # the author's keys, by binding id
        self.config = config
        self.requested_path = Path(manuscript) if manuscript else None
        self.data_dir = data_dir
        self.path: Path | None = None
        self.newline = "\n"
        self.bom = False
        self.engine = None
        self.service: GenerationService | None = None
        self.buffer = StreamBuffer()
        self.job = None
        self.history: HistoryLog | None = None
        self.anchor = None  # (cursor location, document text) when the candidates were asked for
        self.saved_text: str | None = None
        self._autosave_timer = None
        self.saver = ManuscriptSaver(self.post_message, data_dir)
        self._generation_started = 0.0
        self.regenerations = 0
        self._generated_chars = 0
        self._last_edit = self._last_drain = float("-inf")

    # -- layout ------------------------------------------------------------

    def compose(self):
        with Vertical(id="main"):
            yield ManuscriptEditor(id="editor")
            yield CandidatesPanel(id="candidates")
        yield SettingsPanel(self.config, id="settings")
        yield Static("", id="too-small")
        yield StatusLine(id="status")
        yield Footer()

    @property
    def editor(self) -> ManuscriptEditor:
        return self.query_one("#editor", ManuscriptEditor)

    @property
    def candidates(self) -> CandidatesPanel:
        return self.query_one("#candidates", CandidatesPanel)

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    def on_mount(self) -> None:
        self.query_one("#settings").display = False
        self.editor.ambiguous_width = self.config.section("studio")["ambiguous_width"]
        self.candidates.show_placeholder(self.config.section("keys")["generate"])
        self.open_manuscript(self.requested_path)
        self.set_interval(1.0 / self.config.section("studio")["max_fps"], self.drain_events)
        self.load_engine()
        self.editor.focus()
        self.check_size()

    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")

    def check_size(self) -> None:
        width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                tr("too_small", width=width, height=height, min_width=MIN_WIDTH, min_height=MIN_HEIGHT))

    def get_system_commands(self, screen):
        yield from super().get_system_commands(screen)
        for action_id, action, text_key, _ in ACTIONS:
            yield SystemCommand(describe(action_id, text_key), f"{action_id} ({self.config.section('keys')[action_id]})",
                                lambda action=action: self.run_action(action))
        panel = self.candidates
        for title_key, method in (("cmd_regenerate", panel.action_regenerate), ("cmd_reject", panel.action_reject),
                                  ("cmd_partial", panel.action_accept_sentence)):
            yield SystemCommand(tr(title_key), tr(title_key), method)

    # -- the manuscript on disk --------------------------------------------

    def open_manuscript(self, path: Path | None) -> None:
        if path is None:
            path = new_manuscript_path(self.data_dir, create=True)
            text, newline, self.bom = "", "\n", False
            self.status.message = tr("new_manuscript", path=path)
        elif not path.exists():
            text, newline, self.bom = "", "\n", False
            self.status.message = tr("new_manuscript", path=path)
        else:
            try:
                loaded = load_manuscript(path)
            except ManuscriptError as exc:
                self.status.message = str(exc)
                return
            text, newline, self.bom = loaded.text, loaded.newline, loaded.bom
            self.status.message = tr("opened", path=path)
        self.path, self.newline = path, newline
        self.editor.load_text(text.replace("\r\n", "\n"))
        self.editor.move_cursor(self.editor.document.end)
        self.saved_text = text.replace("\r\n", "\n") if path.exists() else None
        self.status.saved_at = time.monotonic() if path.exists() else None
        self.history = HistoryLog(history_path_for(path))
        self.clear_candidates()
        if self.service is not None:
            self.service.warm(self.context_text(), self.config.text_prep)

    def on_text_area_changed(self, event) -> None:
        self._last_edit = time.monotonic()
        if self.saved_text is not None and self.editor.text == self.saved_text:
            return
        self.status.dirty = True
        self.update_ghost()
        delay = self.config.section("studio")["autosave_seconds"]
        if self._autosave_timer is not None:
            self._autosave_timer.stop()
        self._autosave_timer = self.set_timer(delay, self.save_now)

    def on_text_area_selection_changed(self, event) -> None:
        self.update_ghost()

    def save_now(self):
        """Save the current text atomically on the saver thread; returns its Future (None if nothing to save).

        One thread saves, in order: an older text can never land on disk after a newer one.
        """
        if self.path is None:
            return None
        text = self.editor.text
        if text == self.saved_text:
            return None
        self.status.saving = True
        return self.saver.save(self.path, text, self.newline, self.bom)

    def on_save_finished(self, message: SaveFinished) -> None:
        self.saver.finished_one()
        self.status.saving = self.saver.pending > 0
        self.status.save_error = message.error
        if not message.error and message.path == self.path:
            self.saved_text = message.text
            self.status.saved_at = time.monotonic()
            self.status.dirty = self.editor.text != message.text

    # -- the model ---------------------------------------------------------

    @work(thread=True, exclusive=True, group="model")
    def load_engine(self) -> None:
        from backends import LoadError, load

        m = self.config.section("model")
        self.call_from_thread(setattr, self.status, "model", tr("loading_model", model=Path(m["path"]).name))
        try:
            engine = load(m["path"], backend=m["backend"], device=m["device"], vocab=m["vocab"] or None,
                          dtype=m["dtype"] or None, unknown_char=m["unknown_char"],
                          window_refill=m["window_refill"])
        except LoadError as exc:
            self.call_from_thread(self.engine_failed, str(exc))
            return
        set_model_threads(generation_threads(self.config.section("generation")["threads"]))
        self.call_from_thread(self.engine_ready, engine)

    def engine_ready(self, engine) -> None:
        self.engine = engine
        if self.service is None:
            self.service = GenerationService(engine, context_chars=self.config.section("generation")["context_chars"])
        else:
            self.service.set_engine(engine)
        info = engine.info
        self.status.model = f"{Path(info.model_path).name} · {info.architecture} · {info.backend}/{info.device}"
        selection = getattr(engine, "selection", None)
        if selection is not None and selection.reason:  # why this backend: "auto: no CUDA GPU ..."
            if selection.reason.startswith("auto"):  # which backend, and in short why
                self.status.model += f" ({selection.reason.split(';')[0]})"
            self.status.tooltip = selection.reason
        self.service.warm(self.context_text(), self.config.text_prep)
        # The ~300k long-lived objects of torch, Textual and the document never need collecting;
        # without this each full collection stops typing for 150-250 ms while candidates stream.
        gc.collect()
        gc.freeze()

    def engine_failed(self, error: str) -> None:
        self.status.model = tr("no_model")
        self.status.message = tr("model_failed", error=error)

    # -- generating --------------------------------------------------------

    def context_text(self) -> str:
        return self.editor.document.get_text_range((0, 0), self.editor.cursor_location)

    def action_generate(self, regenerate: bool = False) -> None:
        if self.service is None:
            self.status.message = tr("model_failed", error=tr("no_model"))
            return
        g = self.config.section("generation")
        sampling = self.config.sampling
        self.regenerations = self.regenerations + 1 if regenerate else 0
        if sampling.seed is not None and self.regenerations:  # a set seed still gives new candidates
            sampling = replace(sampling, seed=sampling.seed + self.regenerations)
        request = GenerationRequest(
            text=self.context_text(), n=g["candidates"], length=g["length"], sampling=sampling,
            prep=self.config.text_prep, banned_chars=g["banned_chars"], penalty_exempt_chars=g["penalty_exempt_chars"],
        )
        self.buffer.drain()
        self.candidates.reset(request.n)
        self.anchor = (self.editor.cursor_location, self.editor.text)
        self.request = request
        self.history_id = new_request_id()  # unique across sessions, unlike the service's job ids
        self._generation_started, self._generated_chars = time.monotonic(), 0
        self.status.activity = tr("reading_prompt")
        self.job = self.service.submit(request, self.buffer.push)

    def action_stop(self) -> None:
        if self.job is not None and not self.job.done:
            self.job.cancel()

    def drain_events(self) -> None:
        if not self._running:  # shutting down (App._shutdown): the widgets go before this timer does
            return
        now = time.monotonic()
        if now - self._last_edit < TYPING_QUIET and now - self._last_drain < TYPING_REDRAW_INTERVAL:
            return  # typing comes first
        self._last_drain = now
        events = self.buffer.drain()
        if not events:
            return
        current = self.job.id if self.job is not None else None
        changed = False
        for event in events:
            if getattr(event, "request_id", None) != current:
                continue
            if isinstance(event, Started):
                self._generation_started = time.monotonic()
                self.status.activity = tr("generating")
            elif isinstance(event, Chunk):
                self.candidates.append(event.index, event.text)
                self._generated_chars += len(event.text)
                changed = True
            elif isinstance(event, Finished):
                self.candidates.finish()
                self.status.activity = tr("stopped") if event.cancelled else tr("chars_per_second", rate=event.tokens_per_second)
                if self.history is not None and event.texts:
                    self.history.record_request(self.history_id, self.request_settings(), self.request.text,
                                                list(event.texts), self.status.model)
            elif isinstance(event, Failed):
                self.candidates.finish()
                self.status.activity = ""
                self.status.message = tr("generation_failed", error=event.message)
        if changed:
            elapsed = time.monotonic() - self._generation_started
            if elapsed > 0.2 and self.job is not None and not self.job.done:
                self.status.activity = f"{tr('generating')} · {tr('chars_per_second', rate=self._generated_chars / elapsed)}"
            self.candidates.refresh_views()
            self.update_ghost()

    def request_settings(self) -> dict:
        g = self.config.section("generation")
        return {"candidates": g["candidates"], "length": g["length"], **self.config.section("sampling")}

    def update_ghost(self) -> None:
        """The highlighted candidate as ghost text, while the cursor is where it was asked for."""
        editor = self.editor
        ghost = ""
        if self.anchor is not None and self.anchor == (editor.cursor_location, editor.text):
            ghost = format_continuation(self.candidates.highlighted_text(), paragraph_indent(self.anchor[1]))
        if editor.suggestion != ghost:
            editor.suggestion = ghost

    def on_candidates_panel_highlighted(self, event) -> None:
        self.update_ghost()

    def clear_candidates(self) -> None:
        self.action_stop()
        self.anchor = None
        self.candidates.reset(0)
        self.update_ghost()

    # -- accepting ---------------------------------------------------------

    def action_accept(self, number: int) -> None:
        self.accept(number - 1, None)

    def on_candidates_panel_accept(self, event: CandidatesPanel.Accept) -> None:
        self.accept(event.index, event.length)

    def on_manuscript_editor_accept_ghost(self, event) -> None:
        self.accept(self.candidates.selected, self.candidates.cut)

    def accept(self, index: int, length: int | None) -> None:
        panel = self.candidates
        if not (0 <= index < len(panel.candidates)) or panel.candidates[index].rejected:
            self.status.message = tr("nothing_to_accept", number=index + 1)
            return
        text = panel.candidates[index].text
        taken = text if length is None else text[:length]
        self.insert_text(taken)
        if self.history is not None and self.job is not None:
            action = "accepted" if length is None or length >= len(text) else "accepted-partial"
            self.history.record_outcome(self.history_id, index, action, taken if action != "accepted" else None)
        self.status.message = tr("accepted", number=index + 1)
        self.clear_candidates()
        self.editor.focus()

    def insert_text(self, text: str) -> None:
        """Insert model text at the cursor as one undo step, and save right away."""
        editor = self.editor
        indent = paragraph_indent(editor.text)
        editor.suggestion = ""
        editor.history.checkpoint()
        editor.insert(format_continuation(text, indent))
        editor.history.checkpoint()
        self.save_now()

    def on_candidates_panel_reject(self, event: CandidatesPanel.Reject) -> None:
        if self.history is not None and self.job is not None:
            self.history.record_outcome(self.history_id, event.index, "rejected")

    def on_candidates_panel_regenerate(self, event) -> None:
        if self.anchor is not None:  # from where the candidates were asked for
            self.editor.move_cursor(self.anchor[0])
        self.action_generate(regenerate=True)

    # -- other actions -----------------------------------------------------

    def action_save(self) -> None:
        if self._autosave_timer is not None:
            self._autosave_timer.stop()
        self.save_now()

    def action_undo(self) -> None:
        self.editor.undo()

    def action_redo(self) -> None:
        self.editor.redo()

    def action_toggle_settings(self) -> None:
        panel = self.query_one("#settings", SettingsPanel)
        panel.display = not panel.display
        if panel.display:
            panel.query("Input").first().focus()
        else:
            self.editor.focus()

    def on_settings_panel_setting_changed(self, event: SettingsPanel.SettingChanged) -> None:
        value = event.value
        if event.section == "model" and event.key in ("path", "vocab") and value:
            value = str(Path(value).expanduser().resolve())
        self.config = self.config.with_value(event.section, event.key, value)
        saved_to = self.save_setting(event.section, event.key, value)
        self.status.message = tr("setting_saved", key=f"{event.section}.{event.key}", value=value, path=saved_to)
        if event.section == "model":
            self.load_engine()

    def save_setting(self, section: str, key: str, value) -> str:
        from studio.config import user_config_path
        from studio.data.config_writer import update_config_file

        path = self.config.sources[-1] if len(self.config.sources) > 1 else user_config_path()
        try:
            update_config_file(Path(path), {section: {key: value}})
        except (OSError, ValueError) as exc:
            return f"not saved: {exc}"
        return str(path)

    def action_open(self) -> None:
        def opened(choice: str | None) -> None:
            if choice:
                self.save_now()
                self.open_manuscript(Path(choice).expanduser())

        self.push_screen(OpenFileDialog(str(self.path.parent) + "/" if self.path else ""), opened)

    def action_history(self) -> None:
        entries = self.history.entries() if self.history is not None else []

        def chosen(text: str | None) -> None:
            if text:
                self.insert_text(text)

        self.push_screen(HistoryView(entries), chosen)

    async def action_quit(self) -> None:
        self.action_stop()
        pending = self.save_now()
        self.saver.close()  # every save queued so far, this one last
        if pending is not None and pending.result():
            self.status.save_error = pending.result()
        if self.service is not None:
            self.service.close(wait=False)  # never block the screen on a model call in flight
        self.exit()
