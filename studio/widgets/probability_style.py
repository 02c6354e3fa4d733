"""How the probability view marks a character by its probability p (after the sampling settings).

    p >= 50%      plain
    20% .. 50%    yellow
    5% .. 20%     orange, underlined
    p < 5%        red, bold and underlined

The colours are of the 16 / 256-colour palettes; underline and bold carry the two lowest bands on
a monochrome terminal too. Also here: how a probability and a token are written on the status line
and in the alternatives list (whitespace made visible).
"""

from __future__ import annotations

from rich.style import Style

from ai_writer.studio.i18n import tr

# (lowest p of the band, its style, the i18n key of its name), highest band first.
BANDS: tuple[tuple[float, Style | None, str], ...] = (
    (0.5, None, "prob_band_plain"),
    (0.2, Style(color="yellow"), "prob_band_yellow"),
    (0.05, Style(color="dark_orange", underline=True), "prob_band_orange"),
    (0.0, Style(color="red", bold=True, underline=True), "prob_band_red"),
)
MARK_STYLE = Style(reverse=True)  # the character whose alternatives are shown
VISIBLE = {"\n": "⏎", " ": "␣", "\u3000": "⎵", "\t": "⇥"}


def probability_style(p: float | None) -> Style | None:
    """The band's style for p; None for plain (and for a character with no probability known)."""
    if p is None:
        return None
    for low, style, _ in BANDS:
        if p >= low:
            return style
    return BANDS[-1][1]


def legend() -> str:
    """One line naming each band: '≥ 50% plain · 20–50% yellow · ...'."""
    parts, high = [], None
    for low, _, key in BANDS:
        if high is None:
            span = f"≥ {low:.0%}"
        elif low == 0:
            span = f"< {high:.0%}"
        else:
            span = f"{low:.0%}–{high:.0%}"
        parts.append(f"{span} {tr(key)}")
        high = low
    return " · ".join(parts)


def percent(p: float) -> str:
    """62%; '<1%' for a probability above 0 that rounds to 0."""
    value = round(p * 100)
    return "<1%" if value == 0 and p > 0 else f"{value}%"


def with_raw(p: float, p_raw: float) -> str:
    """'62%', or '62% (raw 48%)' where the sampling settings changed it."""
    shown, raw = percent(p), percent(p_raw)
    return shown if shown == raw else f"{shown} ({tr('prob_raw', percent=raw)})"


def visible(text: str) -> str:
    """A token as shown: newlines, spaces and ideographic spaces as ⏎ ␣ ⎵, other control characters as ·."""
    return "".join(VISIBLE.get(c, c if c.isprintable() else "·") for c in text)


def alternatives_strip(choice) -> str:
    """`“的” 62% · 了 18% · ⏎ 4%`: the chosen token quoted, then the others (a TokenChoice's alternatives)."""
    head = f"“{visible(choice.text)}” {with_raw(choice.p, choice.p_raw)}"
    others = [f"{visible(a.text)} {with_raw(a.p, a.p_raw)}" for a in choice.alternatives if a.text != choice.text]
    return " · ".join([head, *others])
