"""The version tree (f3): every request and its candidates, the path taken, favourites; restore a branch.

Above, a Tree of the requests (studio/data/version_tree.py): the path taken runs straight
down, each request's candidates under it (✓ the one taken, ★ favourites), and the requests
that went on from another candidate under that candidate; the edits between requests are
lines of their own. Below, a preview of the highlighted candidate's branch against the
manuscript: the text a restore would replace and the branch's text, the part that differs
marked in each.

Keys (ids in config.toml [keys]): enter restores the highlighted candidate's branch in
place (on a request line it opens or closes it), i inserts the candidate at the cursor
(for detached requests too), f marks or unmarks a favourite, delete prunes the request
(asks first; hidden, kept in the file), escape closes. The dismiss result is what the main
screen applies: a version_tree.Restore (one undo step), a version_tree.Take, or None.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, Tree

from ai_writer.studio import textual_compat as compat
from ai_writer.studio.data.history import HistoryLog
from ai_writer.studio.data.text_changes import changed_span
from ai_writer.studio.data.version_tree import NotPlaced, Restore, Take, VersionTree, build_tree
from ai_writer.studio.dialogs.confirm import ConfirmDialog
from ai_writer.studio.history_report import candidate_label, edit_label, node_label, summary
from ai_writer.studio.i18n import tr

CONTEXT_CHARS = 60  # of the text around the differing part, in the preview
SHOWN_CHARS = 2000  # of each side's differing part


class HistoryTree(ModalScreen[Restore | Take | None]):
    DEFAULT_CSS = """
    HistoryTree { align: center middle; }
    HistoryTree > Vertical { width: 100%; max-width: 140; height: 100%; border: round $accent; background: $surface; }
    HistoryTree .summary { height: auto; padding: 0 1; }
    HistoryTree #history-title { text-style: bold; color: $accent; }
    HistoryTree #history-warnings { color: $warning; }
    HistoryTree Tree { height: 1fr; }
    HistoryTree #history-preview-scroll { height: 40%; border-top: solid $accent; padding: 0 1; }
    """
    BINDINGS = [
        Binding("enter", "restore", "Restore", id="history.restore", priority=True),
        Binding("i", "insert", "Insert at cursor", id="history.insert"),
        Binding("f", "favourite", "Favourite", id="history.favourite"),
        Binding("delete", "prune", "Prune", id="history.prune"),
        Binding("escape", "close", "Close", id="history.close"),
    ]
    TITLES = {"history.restore": "ht_key_restore", "history.insert": "ht_key_insert",
              "history.favourite": "ht_key_favourite", "history.prune": "ht_key_prune", "history.close": "ht_key_close"}

    def __init__(self, log: HistoryLog, text: str, keys: dict | None = None):
        super().__init__()
        compat.retitle_bindings(self, {binding_id: tr(key) for binding_id, key in self.TITLES.items()})
        self.history_log, self.text = log, text
        self.key_config = keys or {}
        self.versions: VersionTree = build_tree(log.read_records(), text, log.warnings)

    def key_for(self, binding_id: str) -> str:
        return self.key_config.get(binding_id) or next(b.key for b in self.BINDINGS if b.id == binding_id)

    # -- layout ------------------------------------------------------------

    def compose(self):
        empty = not self.versions.nodes and not self.versions.edits_after
        with Vertical():
            yield Static(tr("history_empty") if empty else tr("ht_title", summary=summary(self.versions)),
                         id="history-title", classes="summary", markup=False)
            warnings = self.versions.warnings
            warning = tr("ht_warnings", count=len(warnings), first=warnings[0]) if warnings else ""
            yield Static(warning, id="history-warnings", classes="summary", markup=False)
            widget = Tree("history", id="history-tree")
            widget.show_root = False
            widget.auto_expand = False
            widget.guide_depth = 2
            yield widget
            with VerticalScroll(id="history-preview-scroll"):
                yield Static(tr("ht_preview_hint"), id="history-preview", markup=False)
            yield Footer()

    @property
    def tree_widget(self) -> Tree:
        return self.query_one("#history-tree", Tree)

    def on_mount(self) -> None:
        self.query_one("#history-warnings").display = bool(self.versions.warnings)
        latest = self.fill()
        self.tree_widget.focus()
        if latest is not None:
            self.call_after_refresh(self.tree_widget.move_cursor, latest)

    def fill(self, keep: str | None = None):
        """(Re)build the Tree; the item of request `keep` (default: the latest request shown) is returned."""
        widget, tree = self.tree_widget, self.versions
        widget.clear()
        items = {}
        work = [(widget.root, tree.roots)]
        while work:  # no recursion: a history may branch off a branch thousands of times
            parent, nodes = work.pop()
            for node in tree.line(nodes):
                for edit in node.edits_before:
                    parent.add_leaf(Text(edit_label(edit)), data=("edit", edit))
                item = parent.add(Text(node_label(node)), data=("node", node.id), expand=True)
                items[node.id] = item
                for candidate in node.candidates:
                    branches = tree.branches(node, candidate)
                    label = Text(candidate_label(node, candidate))
                    data = ("candidate", node.id, candidate.index)
                    if any(not b.pruned for b in branches):
                        work.append((item.add(label, data=data, expand=True), branches))
                    else:
                        item.add_leaf(label, data=data)
        if tree.edits_after:
            edits = widget.root.add(Text(tr("ht_edits_after")), data=None, expand=False)
            for edit in tree.edits_after:
                edits.add_leaf(Text(edit_label(edit)), data=("edit", edit))
        if keep in items:
            return items[keep]
        shown = [node for node in tree.nodes.values() if node.id in items]
        return items[shown[-1].id] if shown else None

    # -- the preview -------------------------------------------------------

    def highlighted(self):
        node = self.tree_widget.cursor_node
        return node.data if node is not None else None

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        self.query_one("#history-preview", Static).update(self.preview(event.node.data))

    def preview(self, data) -> Text:
        if not data:
            return Text(tr("ht_preview_hint"))
        if data[0] == "edit":
            edit = data[1]
            return self.difference(Text(edit_label(edit, chars=CONTEXT_CHARS) + "\n"), edit.removed, edit.inserted)
        node = self.versions.nodes[data[1]]
        if data[0] == "node":
            shown = Text(node_label(node) + "\n", style="bold")
            shown.append(f"{node.model}  {node.settings}\n", style="dim")
            shown.append("…" + node.context_tail[-CONTEXT_CHARS:].replace("\n", "⏎"))
            return shown
        candidate = node.candidates[data[2]]
        if node.detached:
            shown = Text(tr("ht_preview_detached", key=self.key_for("history.insert")) + "\n", style="bold")
            shown.append(candidate.text)
            return shown
        plan = self.versions.plan_restore(node.id, candidate.index)
        before = self.text[max(0, plan.start - CONTEXT_CHARS) : plan.start]
        shown = Text("…" + before.replace("\n", "⏎") + "\n", style="dim")
        if plan.text == plan.replaced:
            shown.append(tr("ht_preview_same") + "\n", style="bold")
        return self.difference(shown, plan.replaced, plan.text, (plan.start, plan.end))

    @staticmethod
    def difference(shown: Text, now: str, branch: str, where: tuple[int, int] | None = None) -> Text:
        """Both sides, the differing part marked: struck out in red now, green in the branch."""
        change = changed_span(now, branch)
        start = change.position if change else len(now)
        end_now = start + len(change.removed) if change else len(now)
        end_branch = start + len(change.inserted) if change else len(branch)
        for title, text, end, style in (
            (tr("ht_preview_now", start=where[0], end=where[1]) if where else "−", now, end_now, "red strike"),
            (tr("ht_preview_branch", chars=len(branch)) if where else "+", branch, end_branch, "green bold"),
        ):
            shown.append(title + "\n", style="bold")
            if not text:
                shown.append(tr("ht_preview_nothing") + "\n", style="dim")
                continue
            head = text[:start]
            shown.append(head if len(head) <= CONTEXT_CHARS else "…" + head[-CONTEXT_CHARS:])
            middle = text[start:end]
            shown.append(middle if len(middle) <= SHOWN_CHARS else middle[:SHOWN_CHARS] + "…", style=style)
            rest = text[end:]
            shown.append((rest if len(rest) <= CONTEXT_CHARS else rest[:CONTEXT_CHARS] + "…") + "\n")
        return shown

    # -- actions -----------------------------------------------------------

    def action_restore(self) -> None:
        data = self.highlighted()
        if not data or data[0] != "candidate":
            node = self.tree_widget.cursor_node
            if node is not None and node.allow_expand:
                node.toggle()
            return
        try:
            self.dismiss(self.versions.plan_restore(data[1], data[2]))
        except NotPlaced:
            self.notify(tr("ht_cannot_restore", key=self.key_for("history.insert")), severity="warning")

    def action_insert(self) -> None:
        data = self.highlighted()
        if data and data[0] == "candidate":
            node = self.versions.nodes[data[1]]
            self.dismiss(Take(node.id, data[2], node.candidates[data[2]].text))

    def action_favourite(self) -> None:
        data = self.highlighted()
        if not data or data[0] != "candidate":
            return
        node = self.versions.nodes[data[1]]
        candidate = node.candidates[data[2]]
        if not self.history_log.record_mark(node.id, candidate.index, not candidate.favourite):
            self.notify(self.history_log.last_error or "", severity="error")
            return
        self.versions.set_favourite(node.id, candidate.index, not candidate.favourite)
        self.tree_widget.cursor_node.set_label(Text(candidate_label(node, candidate)))

    def action_prune(self) -> None:
        data = self.highlighted()
        if not data or data[0] not in ("node", "candidate"):
            return
        node_id = data[1]

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            if not self.history_log.record_prune(node_id):
                self.notify(self.history_log.last_error or "", severity="error")
                return
            self.versions.prune(node_id)
            line = self.tree_widget.cursor_line
            self.fill()
            self.query_one("#history-title", Static).update(tr("ht_title", summary=summary(self.versions)))
            self.call_after_refresh(self.tree_widget.move_cursor_to_line, max(0, min(line, self.tree_widget.last_line)))

        self.app.push_screen(ConfirmDialog(tr("ht_prune_ask", name=self.history_log.path.name)), answered)

    def action_close(self) -> None:
        self.dismiss(None)
