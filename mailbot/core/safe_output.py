"""Text from outside made safe where mailbot writes it: CSV cells, the terminal, JSON on stdout.

Trust boundary (issue #16 item 6): names, subjects and fields come from strangers' mail. A cell
starting with `=` runs as a formula when staff open the CSV in a spreadsheet; an escape sequence
in a name printed by `mailbot tickets list` retitles or clears the operator's terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# OWASP "CSV Injection": cells starting with these are read as formulas by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """The value to hand to csv.writer: a string that a spreadsheet would read as a formula gets
    a leading `'`; numbers (ints, floats, Decimals: a negative number too) stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A csv.DictWriter row with every cell made safe."""
    return {key: csv_cell(value) for key, value in row.items()}


# ESC-introduced sequences (CSI ... final byte, OSC/DCS/APC/PM/SOS ... BEL or ST, two-byte
# escapes), their 8-bit C1 forms, then every other control character. Each alternative is a
# run of one character class, matched possessively: linear on any input.
_ESCAPES = re.compile(
    r"\x1b\[[\x30-\x3f]*+[\x20-\x2f]*+[\x40-\x7e]?"  # CSI
    r"|\x9b[\x30-\x3f]*+[\x20-\x2f]*+[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*+(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS...
    r"|\x1b[\x20-\x7e]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def terminal_text(value: object, *, one_line: bool = True) -> str:
    """`value` as text that prints as itself: escape sequences and control characters removed,
    line breaks made spaces (or kept as `\\n` with one_line=False), tabs kept."""
    text = str(value)
    text = _LINE_BREAKS.sub(" ", text) if one_line else text.replace("\r\n", "\n").replace("\r", "\n")
    return _ESCAPES.sub("", text)


_C1_AND_DEL = re.compile(r"[\x7f-\x9f\u2028\u2029]")


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """json.dumps with readable non-ASCII text. json escapes the C0 controls (ESC included)
    itself; DEL and the C1 controls (0x9b is an 8-bit CSI) are escaped here too."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _C1_AND_DEL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
