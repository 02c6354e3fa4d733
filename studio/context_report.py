"""What the next request reads, in words: for `ai-writer context` (lines, or JSON) and the studio's viewer (f6)."""

from __future__ import annotations

from ai_writer.studio.i18n import tr

# Why an entry was left out (backends.writing.context's words) -> i18n id.
LEFT_OUT_REASONS = {"disabled": "cv_why_disabled", "excluded": "cv_why_excluded", "no key": "cv_why_no_key",
                    "over budget": "cv_why_over_budget", "bad key": "cv_why_bad_key"}


def part_title(kind: str, name: str = "") -> str:
    """'memory', 'lore entry 张三', 'story', "author's note", in the interface language."""
    if kind == "lore":
        return tr("cv_part_lore", name=name)
    return tr(f"cv_part_{kind}") if kind in ("memory", "story", "note") else kind


def cut_title(label: str) -> str:
    """A cut's part label ('memory', 'note', 'lore NAME') as a part title."""
    if label.startswith("lore "):
        return part_title("lore", label[len("lore "):])
    return part_title(label)


def visible(text: str) -> str:
    """Line breaks shown as ⏎ at the end of each line, so an empty line or a trailing break is seen
    (a last line break is only its ⏎: no empty row after it)."""
    shown = text.replace("\n", "⏎\n")
    return shown[:-1] if shown.endswith("\n") else shown


def hit_lines(context) -> list[str]:
    return [tr("cv_hit", entry=h.entry, key=h.key, position=h.position) for h in context.hits]


def left_out_lines(context) -> list[str]:
    return [tr("cv_left_out_item", name=name, reason=tr(LEFT_OUT_REASONS[why]) if why in LEFT_OUT_REASONS else why)
            for name, why in context.left_out]


def cut_lines(context) -> list[str]:
    return [tr("cv_cut_item", name=cut_title(label), chars=chars) for label, chars in context.cut]


def context_lines(plan) -> list[str]:
    """The viewer's content as plain lines, for a terminal without the studio."""
    context = plan.context
    lines = [tr("cv_title", chars=len(context.text))]
    for part in context.parts:
        lines.append(f"── {tr('cv_part_header', part=part_title(part.kind, part.name), chars=len(part.text))} ──")
        lines.extend(visible(part.text).split("\n"))
    for title, items in (("cv_hits", hit_lines(context)), ("cv_left_out", left_out_lines(context)),
                         ("cv_cut", cut_lines(context))):
        lines.append(f"── {tr(title)} ──")
        lines.extend(items or [tr("cv_none")])
    lines.append(tr("cv_reread", reread=plan.tokens_to_read, total=plan.total_tokens))
    return lines


def context_json(plan) -> dict:
    context = plan.context
    return {
        "parts": [{"kind": p.kind, "name": p.name, "chars": len(p.text), "text": p.text} for p in context.parts],
        "hits": [{"entry": h.entry, "key": h.key, "position": h.position} for h in context.hits],
        "left_out": [{"entry": name, "why": why} for name, why in context.left_out],
        "cut": [{"part": label, "chars": chars} for label, chars in context.cut],
        "chars": len(context.text),
        "tokens": plan.total_tokens,
        "cached_tokens": plan.cached_tokens,
        "reread_tokens": plan.tokens_to_read,
        "from_disk": plan.from_disk,
    }
