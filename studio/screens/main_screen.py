"""The main screen: it owns the writing flow.

Data path: key press -> an action here -> GenerationService (its own thread) -> engine
-> token ids -> text pushed into a StreamBuffer -> drained by a timer on the UI thread
(at most max_fps times a second) -> candidates panel and ghost text. The UI thread never
runs model code: the model loads in a thread worker, generation runs on the service's thread,
saves on the saver's thread.
"""

from __future__ import annotations

import gc
from collections import deque
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from textual import work
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from ai_writer.backends import set_model_threads
from ai_writer.backends.writing.generation import Chunk, Failed, Finished, GenerationService, Reading, Started
from ai_writer.backends.writing.story import Story
from ai_writer.models.textprep import format_continuation, paragraph_indent
from ai_writer.studio.alternatives_flow import AlternativesFlow
from ai_writer.studio.data.history import HistoryLog, history_path_for, new_request_id
from ai_writer.studio.data.manuscript_file import NO_FILE, ManuscriptError, fingerprint_of, load_manuscript, new_manuscript_path, save_beside
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.engine_loading import load_engine
from ai_writer.studio.dialogs.open_file import OpenFileDialog
from ai_writer.studio.generation_run import GenerationRun
from ai_writer.studio.generation_setup import build_request, make_service
from ai_writer.studio.i18n import tr
from ai_writer.studio.keys import make_bindings
from ai_writer.studio.open_manuscript import OpenManuscript
from ai_writer.studio.open_story import OpenStory
from ai_writer.studio.paths import short_path
from ai_writer.studio.walk_away import WalkedAway, call_back, call_or_walk_away
from ai_writer.studio.screens import dialog_actions
from ai_writer.studio.saver import ManuscriptSaver, SaveFinished, SaveOutcome
from ai_writer.studio.stream_buffer import StreamBuffer
from ai_writer.studio.textual_compat import set_bindings
from ai_writer.studio.widgets.candidates import CandidatesPanel
from ai_writer.studio.widgets.editor import ManuscriptEditor
from ai_writer.studio.widgets.settings_panel import SettingsPanel
from ai_writer.studio.widgets.status_line import StatusLine

MIN_WIDTH, MIN_HEIGHT = 60, 16
# While the author types (an edit in the last TYPING_QUIET s), streaming candidates are drawn
# at most once every TYPING_REDRAW_INTERVAL s: each such frame costs the UI thread several ms
# that a keystroke's frame would otherwise wait behind.
TYPING_QUIET = 0.5
TYPING_REDRAW_INTERVAL = 0.15
INDENT_LOOKBACK = 10_000  # characters before the cursor that tell the manuscript's paragraph indent


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


def freeze_long_lived() -> None:
    """Leave the objects alive now (torch, Textual, the document) out of every later collection:
    a full collection walks them all and stops typing for tens of ms each time."""
    gc.collect()
    gc.freeze()


class MainScreen(Screen):
    DEFAULT_CSS = """
    #main { height: 1fr; }
    #too-small { display: none; padding: 1 2; }
    MainScreen.-too-small #too-small { display: block; height: 1fr; }
    MainScreen.-too-small #main, MainScreen.-too-small SettingsPanel { display: none; }
    """

    def __init__(self, config, manuscript: Path | None, data_dir: Path | None, engine_loader=None):
        super().__init__(id="main-screen")
        set_bindings(self, make_bindings(config.keys))  # descriptions in the chosen language
        self.config = config
        self.requested_path = manuscript
        self.data_dir = data_dir
        self.file: OpenManuscript | None = None
        self._declined_utf8 = False  # the author kept the file's encoding: do not ask again
        self.engine = None
        self.released_config = None  # the settings of a model let go for a switch, until one is open again
        self.compared_state = None  # a TunedState the last candidates start from ([generation] compare_state)
        self.engine_loader = engine_loader  # [model] section -> engine, or LoadError; None: backends.load
        self.model_description = ""  # file · architecture · backend/device, kept with each history record
        self.service: GenerationService | None = None
        self.buffer = StreamBuffer()
        self.generation: GenerationRun | None = None
        self.regenerations = 0
        self.history: HistoryLog | None = None
        self.story: OpenStory | None = None  # NAME.story.toml beside the manuscript
        self.warm_job = None  # the service's job reading the manuscript ahead of a request
        self._store_problem_shown = ""
        self._noted = None  # (the editor's edit_version, history.known_revision) when the history last saw the text
        self.saver = ManuscriptSaver(self.post_message, data_dir)
        self.saved_text: str | None = None  # the text of the last successful save (made on the saver thread)
        self.saved_version: int | None = None  # the editor's edit_version of that text; None: not on disk yet
        self._saving_versions: deque = deque()  # edit_version of each save queued, in order
        self._autosave_timer = None
        self._last_edit = self._last_drain = float("-inf")
        self.choices = AlternativesFlow(self)  # the probability view (f9) and choosing alternatives

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
    def settings(self) -> SettingsPanel:
        return self.query_one("#settings", SettingsPanel)

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    @property
    def job(self):
        return self.generation.job if self.generation is not None else None

    def on_mount(self) -> None:
        self.query_one("#settings").display = False
        self.editor.ambiguous_width = self.config.studio.ambiguous_width
        self.candidates.ambiguous_width = self.config.studio.ambiguous_width
        self.candidates.show_placeholder(self.config.keys["generate"])
        self.open_manuscript(self.requested_path)
        self.set_interval(1.0 / self.config.studio.max_fps, self.drain_events)
        self.load_engine()
        self.editor.focus()
        self.check_size()

    def on_resize(self) -> None:
        self.check_size()

    def on_unmount(self) -> None:
        """However the app ends (quit, a signal, a test's exit): the manuscript's lock goes with it."""
        if self.file is not None:
            self.file.close()

    def check_size(self) -> None:
        width, height = self.app.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        was_small = self.has_class("-too-small")
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                tr("too_small", width=width, height=height, min_width=MIN_WIDTH, min_height=MIN_HEIGHT))
        elif was_small or self.focused is None:
            self.editor.focus()  # the hidden widgets lost focus; typing must land in the manuscript

    # -- the manuscript on disk --------------------------------------------

    def open_manuscript(self, path: Path | None) -> None:
        is_new = path is None or not path.exists()
        try:
            if path is None:
                path = new_manuscript_path(self.data_dir, create=True)
            opened = OpenManuscript.open(path, self.data_dir)
        except ManuscriptError as exc:
            self.status.message = str(exc)  # the current manuscript stays open
            return
        if self.file is not None:
            self.file.close()
        self.file = opened
        self.editor.load_text(opened.text)
        self.editor.read_only = opened.read_only
        self.editor.move_cursor(self.editor.document.end)
        self.saved_text = opened.text if opened.fingerprint is not None else None
        self.saved_version = self.editor.edit_version if opened.fingerprint is not None else None
        self.status.saved_at = time.monotonic() if opened.fingerprint is not None else None
        self.status.dirty = False
        self.status.save_error = ""
        self.status.encoding = opened.encoding
        self.status.manuscript = short_path(path)
        self.status.message = " · ".join([tr("new_manuscript" if is_new else "opened", path=short_path(path)),
                                          *opened.notes])
        previous, self.history = self.history, HistoryLog(history_path_for(path))
        self.history.follow(opened.text, previous)  # edits are measured from here (a reload's are recorded)
        self._noted = None
        self.story = OpenStory.for_manuscript(path)
        if self.story.error:
            self.status.message = tr("story_broken", error=self.story.error)
        self.clear_candidates()
        self.warm()
        self.call_after_refresh(freeze_long_lived)  # after the first frame: the manuscript's objects
        recovery = opened.newer_recovery(self.data_dir)
        if recovery is not None:
            self.offer_recovery(opened, recovery)

    def offer_recovery(self, opened: OpenManuscript, recovery: Path) -> None:
        def answered(restore: bool | None) -> None:
            if restore and self.file is opened:
                try:
                    text = load_manuscript(recovery).text
                except ManuscriptError as exc:
                    self.status.message = str(exc)
                    return
                self.editor.replace(text, (0, 0), self.editor.document.end)  # one undo step back to the file
                self.status.message = tr("recovery_restored", path=recovery)

        self.app.push_screen(ConfirmDialog(tr("recovery_offer", path=recovery, name=opened.path.name)), answered)

    @property
    def path(self) -> Path | None:
        return self.file.path if self.file is not None else None

    def on_text_area_changed(self, event) -> None:
        self._last_edit = time.monotonic()
        self.status.dirty = self.editor.edit_version != self.version_on_disk()  # undone back to the disk's text: clean
        self.update_ghost()
        self.choices.editor_moved()
        self.schedule_autosave()

    def version_on_disk(self) -> int | None:
        """The edit_version the file holds once the saves queued have landed (the last one queued)."""
        return self._saving_versions[-1] if self._saving_versions else self.saved_version

    def schedule_autosave(self) -> None:
        """Saved at most autosave_seconds after the first unsaved change, even while the author keeps typing."""
        if self.status.dirty and self._autosave_timer is None:
            self._autosave_timer = self.set_timer(self.config.studio.autosave_seconds, self.autosave)

    def on_text_area_selection_changed(self, event) -> None:
        self.update_ghost()
        self.choices.editor_moved()

    def autosave(self) -> None:
        self._autosave_timer = None
        self.save_now()

    def save_now(self, convert_to_utf8: bool = False):
        """Save the current text atomically on the saver thread; returns its Future (None if nothing to save).

        One thread saves, in order: an older text can never land on disk after a newer one."""
        if self._autosave_timer is not None:
            self._autosave_timer.stop()
            self._autosave_timer = None
        file = self.file
        if file is None or file.read_only:
            return None
        if self.editor.edit_version == self.version_on_disk() and not convert_to_utf8:
            return None  # what the file holds, or will once the saves queued land
        self.status.saving = True
        self._saving_versions.append(self.editor.edit_version)
        lines = list(self.editor.document.lines)  # a shallow copy; joined and encoded on the saver thread
        return self.saver.save(file.target, lines, file.newline, file.bom, encoding=file.encoding,
                               expected=file.fingerprint or NO_FILE,  # a file that was not there must still not be
                               convert_to_utf8=convert_to_utf8)

    def on_save_finished(self, message: SaveFinished) -> None:
        self.saver.finished_one()
        self.status.saving = self.saver.pending > 0
        version = self._saving_versions.popleft() if self._saving_versions else None
        file = self.file
        if file is None or message.path != file.target:
            return  # a save of a manuscript closed since
        if message.saved:
            file.fingerprint, file.encoding, file.recovery = message.fingerprint, message.encoding, None
            self.saved_text, self.saved_version = message.text, version
            self.status.saved_at = time.monotonic()
            self.status.dirty = self.editor.edit_version != self.version_on_disk()
            self.schedule_autosave()  # edited (undone, redone) while it was being written
            self.status.save_error = ""
            self.status.encoding = file.encoding
            if message.backup is not None:
                self.status.message = tr("converted_to_utf8", backup=message.backup)
            return
        file.recovery = message.recovery or file.recovery
        self.status.save_error = message.error
        if message.outcome is SaveOutcome.CONFLICT:
            self.keep_both_versions(message.text, version)
        elif message.outcome is SaveOutcome.ENCODING and not self._declined_utf8:
            self.offer_utf8(message)

    def keep_both_versions(self, text: str, version: int | None) -> None:
        """The file changed on disk: the author's version goes beside it; f5 reloads the disk's."""
        file = self.file
        try:
            beside = save_beside(file.path, text, file.newline, bom=file.bom, encoding=file.encoding)
        except ManuscriptError as exc:
            self.status.save_error = str(exc)  # the text is still open, and in the recovery copy
            return
        file.save_to, file.fingerprint = beside, fingerprint_of(beside)
        self.saved_text, self.saved_version = text, version
        self.status.save_error = ""
        self.status.saved_at = time.monotonic()
        self.status.dirty = self.editor.edit_version != version
        self.status.manuscript = short_path(beside)
        self.status.message = tr("kept_both", name=file.path.name, beside=beside,
                                 key=self.config.keys["reload"])

    def offer_utf8(self, message: SaveFinished) -> None:
        exc = message.exception

        def answered(convert: bool | None) -> None:
            if convert:
                self.save_now(convert_to_utf8=True)
            else:
                self._declined_utf8 = True

        question = tr("offer_utf8", name=self.file.path.name, encoding=self.file.encoding,
                      char=getattr(exc, "char", "?"), line=getattr(exc, "line", "?"))
        self.app.push_screen(ConfirmDialog(question), answered)

    def action_reload(self) -> None:
        """Read the file from disk again (after another program changed it); the author's last text is kept beside it."""
        file = self.file
        if file is None or not file.path.exists():
            return
        if file.save_to is None and self.editor.edit_version != self.saved_version:
            self.save_now()  # the author's text first; a conflict keeps it beside the file
            self.saver.wait()
        self.open_manuscript(file.path)

    def save_before_exit(self) -> SaveFinished | None:
        """Save synchronously (quit, signals); the last save's outcome, None when nothing needed saving."""
        self.save_now()
        self.saver.wait()
        if self.file is not None and self.editor.edit_version == self.saved_version:
            return None
        return self.saver.last_finished

    # -- the model ---------------------------------------------------------

    @work(thread=True, exclusive=True, group="model")
    def load_engine(self, config=None, change: tuple[str, object] | None = None, release: bool = False) -> None:
        """Open the model of `config` (default: the current settings). change: the [model] setting being
        switched to, applied and saved only once its model has loaded; release: let the running model go
        first (when both would not fit in memory)."""
        from ai_writer.backends import LoadError

        config = config or self.config
        model = config.model
        if release:
            call_back(self, self.release_engine)
        call_back(self, setattr, self.status, "model", tr("loading_model", model=Path(model.path).name))
        try:
            engine = call_or_walk_away(self.engine_loader or load_engine, model, name="model-load")
        except WalkedAway:  # the app is ending, or another model was asked for: nobody wants this one
            return
        except LoadError as exc:
            call_back(self, self.engine_failed, str(exc), change)
            return
        except Exception as exc:  # a bug or a broken install: one line on the status line, the manuscript stays open
            call_back(self, self.engine_failed, f"{Path(model.path).name}: {type(exc).__name__}: {exc}", change)
            return
        set_model_threads(generation_threads(config.generation.threads))
        call_back(self, self.engine_ready, engine, config if change else None, change)

    def switch_model(self, key: str, value) -> None:
        """A [model] setting changed in the panel: open that model beside the running one, or ask to release
        the running one first when both would not fit in memory."""
        from ai_writer.studio.model_memory import too_tight

        candidate = self.config.with_value("model", key, value)
        local = candidate.model.backend != "openai"  # a model on a server takes no memory here
        if key == "path" and not value and local:  # the field emptied and left: no file to open, the running one stays
            self.settings.show_value("model", key, self.config.value("model", key))
            return
        tight = too_tight(candidate.model) if self.engine is not None and local else None
        if tight is None:
            self.load_engine(candidate, (key, value))
            return

        def answered(release: bool | None) -> None:
            if release:
                self.load_engine(candidate, (key, value), release=True)
            else:
                self.settings.show_value("model", key, self.config.value("model", key))
                self.status.message = tr("switch_kept", model=self.model_name())

        need, free = tight
        self.app.push_screen(ConfirmDialog(tr("switch_release", new=Path(candidate.model.path).name,
                                              need=need / 2**30, free=free / 2**30, old=self.model_name())), answered)

    def release_engine(self) -> None:
        """Let the running model go (its service stops; nothing is generated until a model is open again)."""
        if self.generation is not None and self.generation.running:
            self.action_stop()
        if self.service is not None:
            self.service.close(wait=False)
        self.service = self.engine = None
        self.released_config = self.config
        import gc

        gc.collect()

    def engine_ready(self, engine, config=None, change: tuple[str, object] | None = None) -> None:
        if change is not None:  # a switch: its setting counts only now that its model runs
            self.config = config
            section_key = f"model.{change[0]}"
            saved_to = self.save_setting("model", change[0], change[1])
            self.status.message = tr("setting_saved", key=section_key, value=change[1], path=saved_to)
        self.released_config = None
        remote = engine.info.backend == "openai"
        if self.service is not None and remote != (self.engine is not None and self.engine.info.backend == "openai"):
            self.service.close(wait=False)  # local <-> a server: another kind of service
            self.service = None
        self.engine = engine
        if self.service is None:
            self.service = make_service(self.config, engine)
        else:
            self.service.set_engine(engine)
        self.show_engine(engine)
        unavailable = getattr(self.service, "unavailable_settings", None)  # a model on a server (backends.remote)
        self.settings.mark_unavailable(unavailable() if unavailable is not None else {})
        if self.config.generation.compare_state:  # checked against this model again
            self.read_compared_state(self.config.generation.compare_state, save=False)
        self.warm()
        freeze_long_lived()

    def show_engine(self, engine) -> None:
        info = engine.info
        if info.backend == "openai":  # a model on a server (backends.remote.engine.RemoteEngine)
            self.status.model = f"{engine.label} · openai"
            self.model_description = self.status.details = engine.description
            return
        state = getattr(engine, "tuned", None)  # a state-tuning file it starts from (backends.engines.start_state)
        with_state = f" + {Path(state.path).stem}" if state is not None else ""
        self.status.model = f"{Path(info.model_path).stem}{with_state} · {info.backend}/{info.device}"
        self.model_description = (f"{Path(info.model_path).name}{with_state} · {info.architecture} · "
                                  f"{info.backend}/{info.device}")
        details = self.model_description
        selection = getattr(engine, "selection", None)
        if selection is not None:  # why this backend (backends.selection.Reason): "auto: no CUDA GPU ..."
            details += f" — {selection.reason.text()}"
        note = getattr(engine, "tokenizer_note", "")
        if note:
            details += f" — {note}"
        self.status.details = details

    @work(thread=True, exclusive=True, group="compare")
    def read_compared_state(self, path: str, save: bool = True) -> None:
        """Read the state file that the last candidates start from ('' : none) and check it fits the model."""
        from ai_writer.studio.compared_state import read_compared_state

        try:
            tuned = read_compared_state(path, self.engine) if path else None
        except ValueError as exc:
            call_back(self, self.compared_state_ready, path, None, str(exc), save)
            return
        call_back(self, self.compared_state_ready, path, tuned, "", save)

    def compared_state_ready(self, path: str, tuned, error: str, save: bool) -> None:
        if error:
            self.compared_state = None
            if save:
                self.settings.show_value("generation", "compare_state", self.config.generation.compare_state)
            self.status.message = tr("compare_failed", error=error)
            return
        self.compared_state = tuned
        if save:
            self.config = self.config.with_value("generation", "compare_state", path)
            self.save_setting("generation", "compare_state", path)
        self.status.message = tr("compare_on", count=self.config.generation.candidates // 2,
                                 name=Path(path).stem) if tuned else tr("compare_off")

    def own_start_name(self) -> str:
        state = getattr(self.engine, "tuned", None)
        return Path(state.path).stem if state is not None else tr("no_state")

    def model_name(self) -> str:
        if self.engine is None:
            return tr("no_model")
        return self.engine.label if self.engine.info.backend == "openai" else Path(self.engine.info.model_path).name

    def engine_failed(self, error: str, change: tuple[str, object] | None = None) -> None:
        if change is None:
            self.status.model = tr("no_model")
            self.status.message = tr("model_failed", error=error)
            return
        self.settings.show_value("model", change[0], self.config.value("model", change[0]))
        self.app.notify(error, title=tr("switch_failed_title"), severity="error", timeout=15)  # whole, however long
        if self.engine is not None:  # the old model keeps writing; the setting was not saved
            self.show_engine(self.engine)
            self.status.message = tr("switch_failed_kept", error=error, model=self.model_name())
        elif self.released_config is not None:  # it was let go for this one: open it again
            self.status.message = tr("switch_failed_reload", error=error)
            self.load_engine(self.released_config)
        else:
            self.status.model = tr("no_model")
            self.status.message = tr("model_failed", error=error)

    # -- generating --------------------------------------------------------

    def say_no_model(self) -> None:
        """Why nothing can be generated yet: the model still loading, or none loaded."""
        loading = any(w.group == "model" and not w.is_finished for w in self.workers)
        self.status.message = tr("model_still_loading") if loading else tr("model_failed", error=tr("no_model"))

    def context_text(self) -> str:
        return self.editor.document.get_text_range((0, 0), self.editor.cursor_location)

    def next_request(self, seed_offset: int = 0):
        """The request for candidates at the cursor: the settings, the story (read again if changed on disk)."""
        story = self.story
        if story is not None and story.refresh():
            self.status.message = tr("story_broken", error=story.error) if story.error else \
                tr("story_reloaded", path=short_path(story.path))
        request = build_request(self.config, self.context_text(), story.active if story else Story(), seed_offset=seed_offset)
        return replace(request, compare_state=self.compared_state) if self.compared_state is not None else request

    def warm(self) -> None:
        """Read the manuscript (and the story) into the cache ahead of the first request."""
        if self.service is not None and self.file is not None and (self.generation is None or not self.generation.running):
            self.warm_job = self.service.submit(replace(self.next_request(), n=0, length=0), self.buffer.push)

    def action_generate(self, regenerate: bool = False) -> None:
        if self.service is None:
            self.say_no_model()
            return
        self.status.message = ""
        self.note_edits()  # what the author changed since the last record goes before this request
        self.regenerations = self.regenerations + 1 if regenerate else 0
        request = self.next_request(seed_offset=self.regenerations)  # a set seed still gives new candidates
        self.buffer.drain()
        self.candidates.reset(request.n)
        anchor = (self.editor.cursor_location, self.editor.edit_version)
        self.status.activity = tr("reading_prompt")
        self.generation = GenerationRun(request, self.service.submit(request, self.buffer.push), anchor, new_request_id(),
                                        indent=paragraph_indent(request.text[-INDENT_LOOKBACK:]))
        self.choices.generation_started(self.generation)

    def action_stop(self) -> None:
        if self.generation is not None:
            self.generation.stop()

    def drain_events(self) -> None:
        if not self.is_running:  # shutting down: the widgets go before this timer does
            return
        now = time.monotonic()
        if now - self._last_edit < TYPING_QUIET and now - self._last_drain < TYPING_REDRAW_INTERVAL:
            return  # typing comes first
        self._last_drain = now
        events = self.buffer.drain()
        if not events:
            return
        reading = [e for e in events if isinstance(e, Reading) and self.warm_job is not None and e.request_id == self.warm_job.id]
        if reading and self.generation is None:  # a long book read ahead of the first request
            last = reading[-1]
            done = last.done_tokens >= last.total_tokens
            self.status.activity = "" if done else tr("reading_progress", done=last.done_tokens, total=last.total_tokens)
        if self.generation is None:
            return
        run = self.generation
        changed = False
        for event in events:
            if getattr(event, "request_id", None) != run.job.id:
                continue
            if isinstance(event, Reading):
                self.status.activity = tr("reading_progress", done=event.done_tokens, total=event.total_tokens)
            elif isinstance(event, Started):
                run.started = time.monotonic()
                self.status.activity = tr("generating")
                if event.sources:
                    self.candidates.set_sources([source or self.own_start_name() for source in event.sources])
            elif isinstance(event, Chunk):
                self.candidates.append(event.index, event.text)
                run.generated_chars += len(event.text)
                changed = True
            elif isinstance(event, Finished):
                self.candidates.finish()
                self.status.activity = tr("stopped") if event.cancelled else tr("chars_per_second", rate=event.tokens_per_second)
                self.note_store_problem()
                if self.history is not None and event.texts:
                    self.history.record_request(run.history_id, self.request_settings(), run.request.text,
                                                list(event.texts), self.model_description)
            elif isinstance(event, Failed):
                self.candidates.finish()
                self.status.activity = ""
                self.status.message = tr("generation_failed", error=event.message)
        if changed:
            rate = run.rate()
            if rate is not None and run.running:
                self.status.activity = f"{tr('generating')} · {tr('chars_per_second', rate=rate)}"
            self.candidates.refresh_views()
            self.update_ghost()

    def note_store_problem(self) -> None:
        """Say once why states are not kept on disk (a full or read-only cache folder): generation goes on without."""
        problem = self.service.store_problem if self.service is not None else ""
        if problem and problem != self._store_problem_shown:
            self._store_problem_shown = problem
            self.status.message = tr("state_store_failed", problem=problem)

    def note_edits(self) -> None:
        """Tell the history what the author changed since its last record (an edit record, if anything did)."""
        editor, history = self.editor, self.history
        if history is None or self._noted == (editor.edit_version, history.known_revision):
            return  # neither the editor nor the history's copy changed since: no whole-text scan
        history.note_text(editor.text)
        self._noted = (editor.edit_version, history.known_revision)

    def record_request_now(self) -> None:
        """The current request in the history (written again only if its candidates changed)."""
        run = self.generation
        if self.history is not None and run is not None:
            self.history.record_request(run.history_id, self.request_settings(), run.request.text,
                                        [c.text for c in self.candidates.candidates], self.model_description)

    def request_settings(self) -> dict:
        config = self.config.with_story_overrides(self.story.active.generation) if self.story else self.config
        g = config.generation
        return {"candidates": g.candidates, "length": g.length, **asdict(config.sampling)}

    def update_ghost(self) -> None:
        """The highlighted candidate as ghost text, while the cursor is where it was asked for."""
        editor = self.editor
        ghost = ""
        anchor = self.generation.anchor if self.generation is not None else None
        if anchor is not None and anchor == (editor.cursor_location, editor.edit_version):
            ghost = format_continuation(self.candidates.highlighted_text(), self.generation.indent)
        if editor.suggestion != ghost:
            editor.suggestion = ghost

    def on_candidates_panel_highlighted(self, event) -> None:
        self.update_ghost()

    def clear_candidates(self) -> None:
        self.action_stop()
        self.generation = None
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
        start, version = self.editor.cursor_location, self.editor.edit_version
        self.record_request_now()  # an accept may come before the request finished
        self.note_edits()
        position = self.editor.document.get_index_from_location(start)
        inserted = self.insert_text(taken)
        self.choices.accepted(panel.candidates[index].choices, taken, start, version)
        if self.history is not None and self.generation is not None:
            action = "accepted" if length is None or length >= len(text) else "accepted-partial"
            self.history.record_outcome(self.generation.history_id, index, action, taken if action != "accepted" else None,
                                        position=position, inserted=inserted)
        self.status.message = tr("accepted", number=index + 1)
        self.clear_candidates()
        self.editor.focus()

    def insert_text(self, text: str) -> str:
        """Insert model text at the cursor as one undo step, and save right away; the text as inserted."""
        editor = self.editor
        indent = paragraph_indent(editor.text_before(max_chars=INDENT_LOOKBACK))
        editor.suggestion = ""
        editor.history.checkpoint()
        inserted = format_continuation(text, indent)
        editor.insert(inserted)
        editor.history.checkpoint()
        self.save_now()
        return inserted

    def on_candidates_panel_reject(self, event: CandidatesPanel.Reject) -> None:
        self.record_request_now()  # a reject may come before the request finished
        if self.history is not None and self.generation is not None:
            self.history.record_outcome(self.generation.history_id, event.index, "rejected")

    def on_candidates_panel_alternatives_wanted(self, event: CandidatesPanel.AlternativesWanted) -> None:
        self.choices.open_for_candidate(event.index, event.at)

    def action_probabilities(self) -> None:
        self.choices.toggle()

    def action_alternatives(self) -> None:
        self.choices.open_for_editor()

    def on_candidates_panel_regenerate(self, event) -> None:
        if self.generation is not None:  # from where the candidates were asked for
            self.editor.move_cursor(self.generation.anchor[0])
        self.action_generate(regenerate=True)

    # -- other actions -----------------------------------------------------

    def action_save(self) -> None:
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
        if event.section == "model" and event.key in ("path", "vocab", "state") and value and value != "world":
            value = str(Path(value).expanduser().resolve())
        if event.section == "model":  # applied and saved once its model has loaded
            self.switch_model(event.key, value)
            return
        if (event.section, event.key) == ("generation", "compare_state"):  # applied once read and checked
            self.read_compared_state(value)
            return
        self.config = self.config.with_value(event.section, event.key, value)
        saved_to = self.save_setting(event.section, event.key, value)
        self.status.message = tr("setting_saved", key=f"{event.section}.{event.key}", value=value, path=saved_to)

    def save_setting(self, section: str, key: str, value) -> str:
        from ai_writer.studio.config import user_config_path
        from ai_writer.studio.data.config_writer import update_config_file

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

        self.app.push_screen(OpenFileDialog(str(self.path.parent) + "/" if self.path else ""), opened)

    def action_details(self) -> None:
        """The model, the backend and why it was chosen: too long for the status line."""
        self.app.notify(self.status.details or tr("no_model"), title=tr("cmd_details"), timeout=15)

    # -- the dialogs that act on the manuscript (studio/screens/dialog_actions.py) --

    def action_scan(self) -> None:
        dialog_actions.open_scan(self)

    def action_history(self) -> None:
        dialog_actions.open_version_tree(self)

    def action_story(self) -> None:
        dialog_actions.open_story_panel(self)

    def action_context(self) -> None:
        dialog_actions.open_context_view(self)
