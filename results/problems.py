"""What a verification finds: `Problem`s, at most `MAX_PROBLEMS` of them listed, in a
`Verification` (`results.verify` checks a database, `results.bundle_verify` a bundle).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_PROBLEMS", "Problem", "Problems", "Verification"]


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold: what (`subject`), why (`what`), and in a bundle, where."""

    subject: str  # "record 12", "run 3", "measurement 5", "body <sha256>", "custody 2", ...
    what: str
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.subject}: {self.what}"

    def to_dict(self) -> dict[str, str | None]:
        return {"subject": self.subject, "what": self.what, "file": self.file}


#: Problems listed in a verification; the rest are counted in one last line. A hostile bundle
#: can hold millions of bad lines: listing each would cost memory and bury the first ones.
MAX_PROBLEMS = 100


class Problems(list[Problem]):
    """A list of problems that keeps the first `limit`, then one line counting the rest."""

    def __init__(self, problems: Iterable[Problem] = (), limit: int = MAX_PROBLEMS) -> None:
        super().__init__()
        self.limit, self.more = limit, 0
        self.extend(problems)

    @property
    def total(self) -> int:
        """How many problems were found, listed or not."""
        return len(self) + self.more - (1 if self.more else 0)

    def append(self, problem: Problem) -> None:
        if len(self) < self.limit:
            super().append(problem)
            return
        self.more += 1
        summary = Problem(f"problems beyond the first {self.limit}",
                          f"{self.more} more, not listed")
        if self.more == 1:
            super().append(summary)
        else:
            self[self.limit] = summary

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.append(problem)

    def __iadd__(self, problems: Iterable[Problem]) -> Problems:  # type: ignore[override,misc]
        self.extend(problems)
        return self


@dataclass
class Verification:
    """The outcome of a verification: `ok` when there is no problem (notices are not problems).
    Only the first `MAX_PROBLEMS` problems are listed, then one line that counts the rest."""

    problems: list[Problem] = field(default_factory=Problems)
    notices: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.problems, Problems):
            self.problems = Problems(self.problems)

    @property
    def total_problems(self) -> int:
        """How many problems were found, the ones past the listed first ones included."""
        listed = self.problems
        return listed.total if isinstance(listed, Problems) else len(listed)

    @property
    def ok(self) -> bool:
        return not self.problems

    def about(self, subject: str) -> list[Problem]:
        """Problems whose subject starts with `subject` (e.g. "record 12", "run 3")."""
        return [p for p in self.problems if p.subject == subject
                or p.subject.startswith(subject + " ")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "problems": [p.to_dict() for p in self.problems],
            "notices": self.notices, "counts": self.counts,
        }
