"""The verdict vocabulary (a contract: the CLI's JSON output and the tests rely on it).

See DESIGN.md, "Vocabulary". A `Verdict` is what the analysis concludes about one measurement:
`verdict` is one of VERDICTS, `techniques` a subset of TECHNIQUES (empty unless blocked),
`outcomes` detailed `stage.outcome` strings, `confidence` in [0, 1], `confirmed` only with
positive proof, and `reason`: one plain sentence naming the evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import RecordError

OK = "ok"
BLOCKED = "blocked"
DOWN = "down"
INSUFFICIENT = "insufficient"
VERDICTS = (OK, BLOCKED, DOWN, INSUFFICIENT)

TECHNIQUES = ("dns", "tcp", "tls", "http", "throttle")

# Run-level network state.
NETWORK_OK = "ok"
LOCAL_FAILURE = "local_failure"
UPSTREAM_UNREACHABLE = "upstream_unreachable"
NETWORK_STATES = (NETWORK_OK, LOCAL_FAILURE, UPSTREAM_UNREACHABLE)


@dataclass(frozen=True)
class Verdict:
    """The analysis of one measurement."""

    verdict: str
    techniques: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    confidence: float = 0.0
    confirmed: bool = False
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise RecordError(f"unknown verdict {self.verdict!r}")
        unknown = set(self.techniques) - set(TECHNIQUES)
        if unknown:
            raise RecordError(f"unknown techniques {sorted(unknown)}")
        if not 0.0 <= self.confidence <= 1.0:
            raise RecordError(f"confidence {self.confidence} outside [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["techniques"] = list(self.techniques)
        data["outcomes"] = list(self.outcomes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            verdict=data["verdict"],
            techniques=tuple(data.get("techniques") or ()),
            outcomes=tuple(data.get("outcomes") or ()),
            confidence=float(data.get("confidence") or 0.0),
            confirmed=bool(data.get("confirmed")),
            reason=data.get("reason") or "",
            details=dict(data.get("details") or {}),
        )


def insufficient(reason: str) -> Verdict:
    """Not enough evidence either way."""
    return Verdict(INSUFFICIENT, reason=reason)


def split_list(text: str | None) -> list[str]:
    """A list column as the store writes it (comma-separated: techniques, outcomes) as a list."""
    return text.split(",") if text else []
