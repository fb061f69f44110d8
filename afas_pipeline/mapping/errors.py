"""Errors raised when a mapping file breaks a rule.

Every message has one shape, so that a newcomer who edits a YAML file learns at once where and why:

    <file>: <field path> (<afas ref> -> <property>): <rule>: <what is wrong, what to do>

The rule is a number from docs/rules.md (R5, R8, ...) or, for the shape of the file itself, one of
the mapping rules M1..M5 below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Rules of the mapping file itself (the R-rules are the sync rules in docs/rules.md).
MAPPING_RULES = {
    "M1": "a field reference is '<entity>.<Field>': entity contact, person or organisation, Field a row key "
          "of that entity's GetConnector",
    "M2": "only the settings documented in the mapping file exist, each with its documented type",
    "M3": "every destination property is fed by exactly one AFAS field",
    "M4": "every AFAS field is written back by at most one mapping entry",
    "M5": "every destination property the mapping names exists in the destination",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule at one place in a mapping file."""

    path: str  # e.g. "fields[7].write_back.field"
    rule: str  # e.g. "R13"
    message: str  # what is wrong and what to do
    context: str | None = None  # e.g. "contact.Function -> function"

    def render(self, file: Path | str | None) -> str:
        where = f"{self.path} ({self.context})" if self.context else self.path
        prefix = f"{file}: " if file is not None else ""
        return f"{prefix}{where}: {self.rule}: {self.message}"


class MappingError(ValueError):
    """A mapping file breaks a rule; the message names the file, the field and the rule.

    ``problems`` holds every problem found (a file with three mistakes reports all three at once);
    ``file`` is the mapping file. Both are empty/None for errors raised with a plain message.
    """

    def __init__(self, message: str, *, file: Path | str | None = None, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.file = file
        self.problems = tuple(problems)

    @classmethod
    def of(cls, file: Path | str | None, problems: Sequence[Problem]) -> MappingError:
        lines = [p.render(file) for p in problems]
        if len(lines) == 1:
            return cls(lines[0], file=file, problems=problems)
        header = f"{file}: {len(lines)} problems" if file is not None else f"{len(lines)} problems"
        return cls(header + "\n  " + "\n  ".join(lines), file=file, problems=problems)
