"""The version tree in words: labels for the history dialog, lines and JSON for `ai-writer history`.

    ✎ edit at 1,204: −3 +12 「夜色如墨」
    2026-05-01 12:00 · at 1,234
      ✓ 1 他抬头望向远方，…  accepted ★
        2026-05-01 12:01 · at 1,250
          …
        2 她笑了。…  rejected
"""

from __future__ import annotations

from ai_writer.studio.data.version_tree import Candidate, Edit, Node, VersionTree
from ai_writer.studio.i18n import tr

PREVIEW_CHARS = 40
FATES = {"accepted": "ht_fate_accepted", "accepted-partial": "ht_fate_partial", "rejected": "ht_fate_rejected",
         "restored": "ht_fate_restored"}


def preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    """One line: line breaks as ⏎, cut with … past `chars`."""
    line = text.replace("\r\n", "\n").replace("\n", "⏎")
    return line if len(line) <= chars else line[:chars] + "…"


def when(time: str) -> str:
    return time[:16].replace("T", " ") if time else "?"


def node_label(node: Node) -> str:
    if node.position is None:
        where = tr("ht_unplaced")
    else:
        where = tr("ht_at", position=node.here if node.here is not None else node.position)
        if node.detached:
            where += " · " + tr("ht_detached")
    label = f"{when(node.time)} · {where}"
    return label + " · " + tr("ht_pruned") if node.pruned else label


def candidate_label(node: Node, candidate: Candidate, chars: int = PREVIEW_CHARS) -> str:
    mark = "✓" if node.taken == candidate.index else " "
    fate = f"  {tr(FATES[candidate.fate])}" if candidate.fate in FATES else ""
    star = " ★" if candidate.favourite else ""
    return f"{mark} {candidate.index + 1} {preview(candidate.text, chars)}{fate}{star}"


def edit_label(edit: Edit, chars: int = 20) -> str:
    shown = preview(edit.inserted or edit.removed, chars)
    return "✎ " + tr("ht_edit", position=edit.position, removed=edit.removed_length,
                     inserted=edit.inserted_length) + (f" 「{shown}」" if shown else "")


def summary(tree: VersionTree) -> str:
    nodes = list(tree.nodes.values())
    return tr("ht_summary", requests=len(nodes), detached=sum(n.detached for n in nodes),
              pruned=sum(n.pruned for n in nodes))


def tree_lines(tree: VersionTree, show_pruned: bool = False) -> list[str]:
    """The tree as indented lines: the path taken goes straight down, other candidates' requests
    are indented under them (pruned nodes left out unless show_pruned)."""
    return [summary(tree), *_branch_lines(tree, tree.roots, 0, show_pruned),
            *(edit_label(edit) for edit in tree.edits_after)]


def _branch_lines(tree: VersionTree, nodes: list[Node], depth: int, show_pruned: bool) -> list[str]:
    """Lines of a branch, without recursion (a history may branch off a branch thousands of times)."""
    out: list[str] = []
    work = [("nodes", depth, nodes)]
    while work:
        kind, depth, item = work.pop()
        pad = "    " * depth
        if kind == "line":
            out.append(item)
            continue
        todo = []
        for node in tree.line(item, show_pruned):
            todo.extend(("line", depth, pad + edit_label(edit)) for edit in node.edits_before)
            todo.append(("line", depth, pad + node_label(node)))
            for candidate in node.candidates:
                todo.append(("line", depth, pad + "  " + candidate_label(node, candidate)))
                branches = tree.branches(node, candidate)
                if branches:
                    todo.append(("nodes", depth + 1, branches))
        work.extend(reversed(todo))
    return out


def _edit_json(edit: Edit) -> dict:
    return {"time": edit.time, "position": edit.position, "removed_length": edit.removed_length,
            "inserted_length": edit.inserted_length, "removed": edit.removed, "inserted": edit.inserted}


def node_json(node: Node) -> dict:
    """One node; its candidates' requests by id (the JSON stays flat however deep the tree)."""
    return {
        "id": node.id, "time": node.time, "position": node.position, "here": node.here, "detached": node.detached,
        "pruned": node.pruned, "model": node.model, "settings": node.settings, "context_tail": node.context_tail,
        "parent": list(node.parent) if node.parent else None, "taken": node.taken,
        "span": list(node.span) if node.span else None,
        "edits_before": [_edit_json(e) for e in node.edits_before],
        "candidates": [{"index": c.index, "text": c.text, "fate": c.fate or None, "taken_text": c.taken,
                        "favourite": c.favourite, "on_path": node.taken == c.index,
                        "children": [child.id for child in c.children]} for c in node.candidates],
    }


def tree_json(tree: VersionTree) -> dict:
    """Every node in the order recorded, pruned ones too (each says so); roots by id."""
    nodes = list(tree.nodes.values())
    return {"requests": len(nodes), "detached": sum(n.detached for n in nodes),
            "pruned": sum(n.pruned for n in nodes), "warnings": tree.warnings,
            "roots": [root.id for root in tree.roots], "nodes": [node_json(node) for node in nodes],
            "edits_after": [_edit_json(e) for e in tree.edits_after]}
