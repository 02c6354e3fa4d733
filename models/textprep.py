"""How manuscript text is prepared before the model sees it (as AI-Writer did).

Each line is stripped of spaces and ideographic spaces ('\\u3000', the paragraph
indent), empty lines and '\\r' are dropped, and a '\\n' is put in front so the model
starts from a paragraph boundary. Unlike AI-Writer, a manuscript that ends with a
line break keeps one: the author asked for a new paragraph.
"""

from __future__ import annotations

from dataclasses import dataclass

INDENT_CHARS = " \t\u3000"


@dataclass(frozen=True)
class TextPrep:
    strip_indents: bool = True
    drop_empty_lines: bool = True
    leading_newline: bool = True

    def prepare(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        ends_paragraph = text.rstrip(INDENT_CHARS).endswith("\n")
        lines = text.split("\n")
        if self.strip_indents:
            lines = [line.strip(INDENT_CHARS) for line in lines]
        if self.drop_empty_lines:
            lines = [line for line in lines if line]
        body = "\n".join(lines)
        if self.drop_empty_lines and ends_paragraph and body:
            body += "\n"
        return ("\n" + body) if self.leading_newline else body


def paragraph_indent(text: str) -> str:
    """The indent the manuscript's paragraphs use ('　　', spaces or ''), read from its last indented line."""
    for line in reversed(text.splitlines()):
        stripped = line.lstrip(INDENT_CHARS)
        if stripped:
            return line[: len(line) - len(stripped)]
    return ""


def format_continuation(text: str, indent: str) -> str:
    """Model output as manuscript text: each new paragraph gets the manuscript's indent."""
    return text.replace("\n", "\n" + indent) if indent else text
