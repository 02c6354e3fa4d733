"""The surprise scan in words: for `ai-writer scan` (lines) and the studio's scan view (f7)."""

from __future__ import annotations

from ai_writer.studio.i18n import tr

BAR_WIDTH = 20
EIGHTHS = " ▏▎▍▌▋▊▉"
SHOWN_CHARS = 40  # of a span's or a loop's text, in a row
WORST_SHARE = 20  # the worst 1 in WORST_SHARE paragraphs (at least one) are highlighted


def bar(value: float | None, top: float, width: int = BAR_WIDTH) -> str:
    """A bar of block characters, `width` cells for `top`."""
    if value is None or top <= 0:
        return ""
    eighths = max(0, min(width * 8, round(value / top * width * 8)))
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """One line: line breaks as ⏎, long texts cut with …."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bits_per_char(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def title(scan) -> str:
    return tr("sc_title", bpc=bits_per_char(scan.bits_per_char), chars=scan.chars)


def span_label(span) -> str:
    """The span in its place: a few characters of its line either side, the span itself in [ ]."""
    text = f"{shown(span.before)}[{shown(span.text)}]{shown(span.after)}"
    return tr("sc_span", line=span.line, text=text, bits=span.bits, peak=span.peak)


def loop_label(loop) -> str:
    lines = ", ".join(f"{n:,}" for n in loop.lines[:8]) + ("…" if len(loop.lines) > 8 else "")
    return tr(f"sc_loop_{loop.kind}", count=loop.count, text=shown(loop.text), lines=lines)


def top_bits_per_char(scan) -> float:
    return max((p.bits_per_char or 0.0 for p in scan.paragraphs), default=0.0)


def paragraph_label(paragraph, top: float) -> str:
    return f"{paragraph.line:>7,}  {paragraph.chars:>7,}  {bits_per_char(paragraph.bits_per_char):>6}  " \
           f"{bar(paragraph.bits_per_char, top)}"


def worst_paragraphs(scan) -> set[int]:
    """Indexes of the paragraphs with the most bits/char: the worst 1 in WORST_SHARE, at least one."""
    ranked = sorted(range(len(scan.paragraphs)), key=lambda i: -(scan.paragraphs[i].bits_per_char or 0.0))
    return set(ranked[: max(1, len(ranked) // WORST_SHARE)]) if ranked else set()


def scan_lines(name: str, scan) -> list[str]:
    """The whole scan as plain lines, for a terminal without the studio."""
    lines = [f"{name} · {title(scan)}", "", tr("sc_paragraphs")]
    top = top_bits_per_char(scan)
    worst = worst_paragraphs(scan)
    for index, paragraph in enumerate(scan.paragraphs):
        lines.append(("* " if index in worst else "  ") + paragraph_label(paragraph, top))
    lines += ["", tr("sc_spans", threshold=scan.threshold)]
    lines += [f"  {span_label(span)}" for span in scan.spans] or [f"  {tr('sc_none')}"]
    lines += ["", tr("sc_loops")]
    lines += [f"  {loop_label(loop)}" for loop in scan.loops] or [f"  {tr('sc_none')}"]
    return lines
