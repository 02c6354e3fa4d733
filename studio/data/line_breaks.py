"""Line endings: which style a text uses, and whether the editor can give it back unchanged.

The editor (Textual's TextArea) splits lines with str.splitlines and joins them with one
newline, so any other line break in the text (form feed, \\v, \\x1c-\\x1e, \\x85, U+2028,
U+2029, a CR without LF) would come back as "\\n", and a file mixing CRLF and LF would come
back in one style. `check_editable` refuses such texts at open, naming the first line at
fault, so that saving never changes bytes the author did not touch. A text that is all
CRLF or all LF round-trips exactly (the app edits it with "\\n" and saves with its style).
Mixed CRLF/LF files are refused for editing rather than silently rewritten in one style.
"""

from __future__ import annotations

import re

from ai_writer.studio.data.manuscript_errors import ManuscriptNotEditable
from ai_writer.studio.i18n import tr

# The characters str.splitlines breaks on besides "\n" and "\r" (a lone CR is found apart);
# each has a name in studio/i18n.py as "mf_char_XXXX".
SPLITTING = ("\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_LONE_CR = re.compile(r"\r(?!\n)")
_BARE_LF = re.compile(r"(?<!\r)\n")


def newline_style(text: str) -> str:
    """"\\r\\n" when most line endings are CRLF, else "\\n"."""
    crlf = text.count("\r\n")
    bare = text.count("\n") - crlf
    return "\r\n" if crlf and crlf >= bare else "\n"


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def check_editable(text: str, name: str) -> None:
    """Raise ManuscriptNotEditable when the editor could not keep `text` byte for byte."""
    # str.find per character runs in C: no per-line Python loop even for 30 MB.
    found = [(position, char) for char in SPLITTING if (position := text.find(char)) >= 0]
    crs = text.count("\r")
    crlf = text.count("\r\n")
    if crs != crlf:
        found.append((_LONE_CR.search(text).start(), "\r"))
    if found:
        position, char = min(found)
        line = _line_at(text, position)
        raise ManuscriptNotEditable(
            tr("mf_line_break", name=name, line=line, code=f"U+{ord(char):04X}", what=tr(f"mf_char_{ord(char):04x}")),
            line=line, char=char)
    bare = text.count("\n") - crlf
    if crlf and bare:
        if crlf >= bare:  # mostly CRLF: name the first LF alone
            position, this, other = _BARE_LF.search(text).start(), "LF", "CRLF"
        else:
            position, this, other = text.find("\r\n"), "CRLF", "LF"
        line = _line_at(text, position)
        raise ManuscriptNotEditable(
            tr("mf_mixed_newlines", name=name, line=line, this=this, other=other, crlf=crlf, lf=bare), line=line)

