"""Text fit for a log line or an error message, whoever wrote it.

AFAS's `externalMessage`, Spotler's `message`, a setting's value: any of them may hold a line break, a
NUL or a terminal escape sequence. Raw in a log line, a line break forges a second log record and an
ESC sequence rewrites the operator's terminal. Messages and logs therefore carry such characters
escaped, as Python writes them in a string literal. Data values sent to AFAS or Spotler are not
touched: they go through unchanged, on purpose (see the README).
"""

from __future__ import annotations

import unicodedata

__all__ = ["one_line", "printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Line and paragraph separators end a line in many viewers; the bidirectional controls reorder what
# a reader sees on screen ("Trojan Source").
_INVISIBLE_FORMATTING = "\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _table() -> dict[int, str]:
    # Category Cc: C0 controls (NUL, ESC, ...), DEL and the C1 controls (0x80-0x9f, CSI among them).
    controls = [chr(c) for c in range(0x100) if unicodedata.category(chr(c)) == "Cc"]
    return {ord(char): _escape(char) for char in [*controls, *_INVISIBLE_FORMATTING]}


_TABLE = _table()


def printable(text: object) -> str:
    """`text` with every control character escaped (`\\n`, `\\r`, `\\t`, `\\x00`, `\\x1b`, `\\u202e`...).

    Backslashes are left alone, so cleaning twice changes nothing (an error pickled between processes
    is cleaned again when it is rebuilt).
    """
    return str(text).translate(_TABLE)


def one_line(text: object) -> str:
    """A message of several lines as one line (the lines joined with ` | `), control characters escaped.

    For our own multi-line messages (a mapping file with three problems, a failed check) printed where
    one line per problem is wanted; anything from outside is escaped by `printable`.
    """
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return printable(" | ".join(lines))
