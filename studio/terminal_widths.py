"""How wide the terminal draws the punctuation of Chinese prose that Unicode calls "ambiguous".

“ ” ‘ ’ … — are East Asian Ambiguous width: Rich (and so Textual) counts them as
one cell, but terminals set up for CJK draw them two cells wide, and then every
character after them on the row is drawn one cell further right than Textual thinks:
the cursor lands on the wrong character. `set_ambiguous_width(2)` makes Rich count
these punctuation marks as two cells, so drawing, wrapping and the cursor agree with
such a terminal. Box-drawing and other ambiguous characters are left alone, since
Textual's own borders use them.
"""

from __future__ import annotations

from functools import lru_cache

import rich.cells as rich_cells
from rich._unicode_data import load as load_unicode_table

PROSE_AMBIGUOUS = "‘’“”…—―‥※"

_original_loader = rich_cells.load_cell_table


@lru_cache(maxsize=None)
def _table_with_wide_punctuation(unicode_version: str = "auto"):
    table = load_unicode_table(unicode_version)
    extra = [(ord(c), ord(c), 2) for c in PROSE_AMBIGUOUS]
    covered = [e for e in table.widths for cp, _, _ in extra if e[0] <= cp <= e[1]]
    if covered:  # a newer Unicode table that already sizes them: leave it
        return table
    return table._replace(widths=sorted(list(table.widths) + extra))


def set_ambiguous_width(width: int) -> None:
    """1: as Rich counts (most Western terminal setups); 2: as CJK terminal setups draw them."""
    rich_cells.load_cell_table = _table_with_wide_punctuation if width == 2 else _original_loader
    rich_cells.get_character_cell_size.cache_clear()
    rich_cells.cached_cell_len.cache_clear()
