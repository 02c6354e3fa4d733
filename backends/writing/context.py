"""What the model reads for one request: the story's memory, its active lore and the manuscript.

    context = assemble(text, story, budgets, prep)
    context.text    # exactly what is read, part after part
    context.parts   # memory, lore entries, the story window (split by the author's note)

Pure and stateless: the same text and story give the same context, and writing at
the end of the manuscript leaves the start of the context as it was (so the states
cached after it still apply). Budgets count the prepared text of a part, not the line
breaks put around it; what is over is cut from its start (farthest from the cursor).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace

from ai_writer.backends.writing.story import ContextBudgets, LoreEntry, Story
from ai_writer.models.textprep import TextPrep

REGEX_KEY = re.compile(r"/(.*)/([A-Za-z]*)", re.S)
REGEX_FLAGS = {"i": re.I, "m": re.M, "s": re.S}
# A sentence end: 。！？!?… (one or more), then any closing quotes.
SENTENCE_END = re.compile(r"[。！？!?…]+[”’」』]*")


@dataclass(frozen=True)
class ContextPart:
    kind: str  # "memory" | "lore" | "story" | "note"
    text: str  # exactly what the model reads for this part (prepared)
    name: str = ""  # the lore entry's name for kind "lore" (never in text)


@dataclass(frozen=True)
class KeyHit:
    entry: str  # lore entry name
    key: str  # the key as written in the story file
    position: int  # offset into the manuscript text given to assemble (start of the last match)


@dataclass(frozen=True)
class AssembledContext:
    parts: tuple[ContextPart, ...]
    hits: tuple[KeyHit, ...]
    left_out: tuple[tuple[str, str], ...]  # (lore entry name, "disabled" | "excluded" | "no key" | "over budget" | "bad key")
    cut: tuple[tuple[str, int], ...]  # (part label: "memory", "lore NAME", "note"; characters cut)

    @property
    def text(self) -> str:
        return "".join(part.text for part in self.parts)


# -- keys ------------------------------------------------------------------


class KeyMatcher:
    """One lore key: `matcher(text)` is the start of its last match in text, or -1."""

    def __init__(self, key: str):
        self.key = key
        self._regex = None
        self._folded = key.casefold()
        found = REGEX_KEY.fullmatch(key)
        if found:
            pattern, letters = found.groups()
            unknown = sorted(set(letters) - set(REGEX_FLAGS))
            if unknown:
                raise ValueError(f"key {key!r}: unknown regex flag {', '.join(unknown)} (use i, m, s)")
            if not pattern:
                raise ValueError(f"key {key!r}: the regex is empty")
            flags = 0
            for letter in letters:
                flags |= REGEX_FLAGS[letter]
            try:
                self._regex = re.compile(pattern, flags)
            except re.error as exc:
                raise ValueError(f"key {key!r}: bad regex: {str(exc).splitlines()[0]}") from None

    def __call__(self, text: str) -> int:
        if self._regex is not None:
            last = -1
            for match in self._regex.finditer(text):
                last = match.start()
            return last
        if not self._folded.strip():
            return -1  # an empty key never matches
        folded = text.casefold()
        if len(folded) == len(text):  # each character folded to one: offsets agree
            return folded.rfind(self._folded)
        starts, total = [], 0  # a character folded to several (ß -> ss): map back
        for ch in text:
            starts.append(total)
            total += len(ch.casefold())
        found = folded.rfind(self._folded)
        return -1 if found < 0 else bisect.bisect_right(starts, found) - 1


def compile_key(key: str) -> KeyMatcher:
    """A key's matcher: "/regex/" with flags i, m, s, or plain text (case-insensitive). ValueError for a bad regex."""
    return KeyMatcher(key)


# -- the story window and the author's note ---------------------------------


def story_window(prepared_body: str, context_chars: int) -> int:
    """Where the story part starts in the prepared text (without its leading '\\n').

    It moves on only in steps of context_chars, so the window holds between c and 2c
    characters, then to just after a line break in its first quarter when there is one.
    """
    c, length = context_chars, len(prepared_body)
    if c <= 0 or length <= c:
        return 0
    start = ((length - c) // c) * c
    newline = prepared_body.find("\n", start, start + c // 4)
    return newline + 1 if newline >= 0 else start


def note_position(window: str, depth: int, unit: str, starts_paragraph: bool = True) -> int:
    """Where the author's note goes in the story window (0: before it).

    starts_paragraph: whether the window itself starts a paragraph (else its offset 0
    is not a paragraph start for the "chars" unit).
    """
    depth = max(0, depth)
    if unit == "paragraphs":  # just before the depth-th last paragraph's start
        position = len(window)
        for step in range(depth):
            if position <= 0:
                return 0
            position = window.rfind("\n", 0, position - (1 if step else 0)) + 1
        return position
    target = len(window) - depth
    if target <= 0:
        return 0
    low = max(0, target - depth)
    newline = window.rfind("\n", max(0, low - 1), target)
    if newline >= 0:
        return newline + 1
    if low == 0 and starts_paragraph:
        return 0
    sentence_end = -1
    for match in SENTENCE_END.finditer(window, max(0, low - 256)):
        if match.start() > target:
            break
        if low <= match.end() <= target:
            sentence_end = match.end()
    position = sentence_end if sentence_end >= 0 else target
    if position < len(window) and window[position] == "\n":
        position += 1  # right before a line break: the next paragraph's start instead
    return position


# -- lore -------------------------------------------------------------------


@dataclass
class _Active:
    index: int
    entry: LoreEntry
    seen: int  # position of the key that fired, -1 for a constant entry without one
    text: str


def _scan(text: str, scan_chars: int) -> tuple[str, int]:
    """The part of the manuscript an entry's keys are looked for in, and where it starts (0: all of it)."""
    if scan_chars <= 0 or scan_chars >= len(text):
        return text, 0
    return text[-scan_chars:], len(text) - scan_chars


def _matchers(keys) -> list[KeyMatcher]:
    return [compile_key(key) for key in keys if key.strip()]


def _lore(text, story, budget, content, hits, left_out, cut) -> list[_Active]:
    """The active entries in reading order, within the budget; the rest are noted in left_out."""
    reasons: dict[int, str] = {}
    active: list[_Active] = []
    for index, entry in enumerate(story.lore):
        if not entry.enabled:
            reasons[index] = "disabled"
            continue
        try:
            keys, secondary, exclude = (_matchers(k) for k in (entry.keys, entry.secondary_keys, entry.exclude_keys))
        except ValueError:
            reasons[index] = "bad key"
            continue
        region, base = _scan(text, entry.scan_chars)
        fired, seen = None, -1
        for matcher in keys:
            found = matcher(region)
            if found >= 0 and (fired is None or found > seen):
                fired, seen = matcher, found
        if not entry.constant:
            if fired is None or any(m(region) < 0 for m in secondary):
                reasons[index] = "no key"
                continue
            if any(m(region) >= 0 for m in exclude):
                reasons[index] = "excluded"
                continue
        if fired is not None:
            seen += base
            hits.append(KeyHit(entry.name, fired.key, seen))
        body = content(entry.text)
        if body:
            active.append(_Active(index, entry, seen, body))
    # Over the budget: whole entries go, lowest priority then least recently seen first.
    total = sum(len(a.text) for a in active)
    for dropped in sorted(active, key=lambda a: (a.entry.priority, a.seen, -a.index)):
        if total <= budget or len(active) <= 1:
            break
        active.remove(dropped)
        total -= len(dropped.text)
        reasons[dropped.index] = "over budget"
    if active and total > budget:
        only = active[0]
        if budget <= 0:
            active.clear()
            reasons[only.index] = "over budget"
        else:
            cut.append((f"lore {only.entry.name}", len(only.text) - budget))
            only.text = only.text[-budget:]
    left_out.extend((story.lore[i].name, reasons[i]) for i in sorted(reasons))
    return sorted(active, key=lambda a: (-a.entry.priority, a.seen, a.index))


# -- assembly -------------------------------------------------------------


def assemble(
    text: str,
    story: Story = Story(),
    budgets: ContextBudgets = ContextBudgets(),
    prep: TextPrep = TextPrep(),
) -> AssembledContext:
    """What the model reads for the manuscript `text` (up to the cursor) with this story. Never raises on bad keys."""
    lead = "\n" if prep.leading_newline else ""
    paragraph = replace(prep, leading_newline=False)
    cut: list[tuple[str, int]] = []

    def content(raw: str) -> str:
        return paragraph.prepare(raw).strip("\n")

    def within(label: str, body: str, budget: int) -> str:
        if len(body) <= budget:
            return body
        cut.append((label, len(body) - budget))
        return body[len(body) - budget :] if budget > 0 else ""

    parts: list[ContextPart] = []
    memory = within("memory", content(story.memory), budgets.memory_budget)
    if memory:
        parts.append(ContextPart("memory", memory + "\n"))

    hits: list[KeyHit] = []
    left_out: list[tuple[str, str]] = []
    for entry in _lore(text, story, budgets.lore_budget, content, hits, left_out, cut):
        parts.append(ContextPart("lore", entry.text + "\n", entry.entry.name))

    prepared = prep.prepare(text)
    body = prepared[len(lead) :] if lead and prepared.startswith(lead) else prepared
    start = story_window(body, budgets.context_chars)
    window = body[start:]
    note = story.authors_note
    note_text = within("note", content(note.text), budgets.note_budget)
    if note_text:
        at = note_position(window, note.depth, note.unit, start == 0 or body[start - 1] == "\n")
        before, after = window[:at], window[at:]
        starts_paragraph = at == 0 or before.endswith("\n")
        if before:
            parts.append(ContextPart("story", before))
        parts.append(ContextPart("note", ("" if starts_paragraph else "\n") + note_text + "\n"))
        if after:
            parts.append(ContextPart("story", after))
    elif window or not parts:
        parts.append(ContextPart("story", window))
    parts[0] = replace(parts[0], text=lead + parts[0].text)
    return AssembledContext(tuple(parts), tuple(hits), tuple(left_out), tuple(cut))
