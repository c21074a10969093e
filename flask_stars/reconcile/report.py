"""``ReconcileReport``: what a reconcile run found and did, as counts, examples and words."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .. import audit
from .position import LEGACY, MOVED, PAST_END, UNREADABLE

#: How many unmatched transactions a report lists (all are counted).
MAX_EXAMPLES = 50


@dataclass
class ReconcileReport:
    """What a run found and did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    full: bool = False
    #: The run's row in ``stars_reconcile_runs`` (None for a dry run).
    run_id: int | None = None
    #: Who started it: ``"name (source)"`` of its ``audit.Actor``.
    actor: str | None = None
    #: The ``stars_meta`` key of the position this run read from and saved.
    position_key: str | None = None
    #: The position found saved when the run started (None: none was).
    saved_offset: int | None = None
    #: Why the saved position was not used (``MOVED``, ``PAST_END``, ``UNREADABLE``, ``LEGACY``).
    position_problem: str | None = None
    start_offset: int = 0
    end_offset: int = 0
    read: int = 0
    already_recorded: int = 0
    credited: int = 0
    recorded_not_credited: int = 0
    refunds_applied: int = 0
    refunds_noted: int = 0
    due_refunds_finished: int = 0
    unmatched: int = 0
    other: int = 0
    #: Something the operator must know (the saved position did not match): the run's
    #: outcome is then ``warning``, never a plain "ok".
    warning: str | None = None
    #: Something the operator may like to know ("no new transactions since position N").
    note: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        """The report as plain data (the counts, the offsets and the unmatched examples)."""
        return asdict(self)

    @property
    def outcome(self) -> str:
        """``audit.WARNING`` when the run has a warning, else ``audit.OK``."""
        return audit.WARNING if self.warning else audit.OK

    def rows(self) -> list[tuple[str, int]]:
        """Each count with its label, as the CLI and the dashboard list them."""
        would = "would be " if self.dry_run else ""
        return [
            ("transactions read", self.read),
            ("already in the ledger", self.already_recorded),
            (f"missed payments {would}credited", self.credited),
            (f"missed payments {would}recorded, not credited", self.recorded_not_credited),
            (f"missed refunds {would}applied", self.refunds_applied),
            (f"refunds of unseen payments {would}kept for them", self.refunds_noted),
            (f"due refunds of second payments {would}finished", self.due_refunds_finished),
            ("unmatched (reported, not changed)", self.unmatched),
            ("other transactions (not payments)", self.other),
        ]

    def summary(self) -> str:
        """The run in one line: what it read, what it changed, and its warning or note."""
        if self.read:
            line = f"read {self.read} transaction(s), positions {self.start_offset} to {self.end_offset}"
        else:
            line = f"read no transaction (position {self.end_offset})"
        changed = [
            f"{count} {label}"
            for label, count in self.rows()[1:]
            if count and not label.startswith(("already", "other"))
        ]
        line += ": " + (", ".join(changed) if changed else "nothing to mend")
        for extra in (self.warning, self.note):
            if extra:
                line += f". {extra}"
        return line

    def add_unmatched(self, tx: dict[str, Any], why: str) -> None:
        """Count ``tx`` as unmatched (reported, not changed), listed among the first ``MAX_EXAMPLES``."""
        self.unmatched += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                {"id": tx.get("id"), "amount": tx.get("amount"), "date": tx.get("date"), "why": why}
            )

    def position_not_used(self, problem: str, saved: int | None) -> None:
        """Say why the saved position was not used (a warning, unless it is the legacy offset)."""
        self.position_problem = problem
        if problem == LEGACY:
            self.note = (
                f"The position saved by an earlier flask_stars ({saved} transactions, no transaction "
                "id to check it by) was not used: every transaction was read from the start once"
            )
            return
        why = {
            MOVED: f"Telegram no longer lists the transaction saved at position {saved}",
            PAST_END: f"the saved position {saved} is past the end of Telegram's list",
            UNREADABLE: "the saved position could not be read",
        }[problem]
        self.warning = (
            f"{why} (another bot or environment on these tables, or a sandbox that started afresh): "
            "every transaction was read again from the start (position 0)"
        )
