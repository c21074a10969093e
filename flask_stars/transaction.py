"""Transactions at the edges: the one place that commits, rolls back and announces.

Domain code (``ledger``, ``orders``, ``precheckout``, ``subscriptions``, ``rules``) works
inside its caller's transaction and never ends it. The edges (the webhook intake, the
blueprint, the chat flow, the CLI, the dashboard, reconcile) and the operations they share
(``operations``: a refund, an invoice link, a subscription change) open a unit of work,
let the domain change the session, and commit it here. ``tests/setup/test_structure.py`` checks
that no other module calls ``commit()`` or ``rollback()``.

What must happen only once a change is durable (signals, a message to the buyer, the
refund of a second payment) is queued on the unit of work with ``after_commit`` and runs
after the commit, never inside it: no lock is held while a receiver or Telegram runs, and a
rolled-back change announces nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from .db import kept_after_commit
from .state import StarsState

__all__ = ["UnitOfWork", "abandon", "end_read", "unit_of_work"]

log = logging.getLogger("flask_stars")


class UnitOfWork:
    """One transaction of ``state``'s session, with what to do once it is committed.

    :param state: the extension's state; its session holds the transaction.
    :param keep_loaded: objects stay readable after the commit without a reload query
        (for an edge that answers with what it just wrote).
    """

    def __init__(self, state: StarsState, *, keep_loaded: bool = False) -> None:
        self.state = state
        self.keep_loaded = keep_loaded
        self._after: list[Callable[[], object]] = []

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run ``action`` once this unit of work has committed (dropped if it rolls back).

        :param action: a callable with no arguments: a signal, a message, a refund.
        """
        self._after.append(action)

    def commit(self, *, announce: bool = True) -> None:
        """Commit the session, then run the queued actions in the order they were queued.

        :param announce: False to keep the actions for ``announce()``, for a caller whose
            commit sits inside error handling that must not see an action's own failure.
        """
        session = self.state.session
        if self.keep_loaded:
            with kept_after_commit(session):
                session.commit()
        else:
            session.commit()
        if announce:
            self.announce()

    def announce(self) -> None:
        """Run the actions queued for after the commit (once each), then forget them."""
        actions, self._after = self._after, []
        for action in actions:
            action()

    def rollback(self) -> None:
        """Undo the session's changes and forget the queued actions (quietly: ``abandon``)."""
        self._after.clear()
        abandon(self.state)


@contextmanager
def unit_of_work(state: StarsState, *, keep_loaded: bool = False) -> Iterator[UnitOfWork]:
    """A unit of work committed when the block ends (a ``return`` inside it too), rolled
    back if the block or the commit raises; the queued actions run after the commit.

    :param state: the extension's state.
    :param keep_loaded: as :class:`UnitOfWork`'s.

    The block's exception is the one raised: a rollback that fails too is only logged.
    """
    work = UnitOfWork(state, keep_loaded=keep_loaded)
    try:
        yield work
        work.commit(announce=False)
    except BaseException:
        work.rollback()  # a failed commit (a constraint met at the flush) too
        raise
    work.announce()  # an action's own failure is not the transaction's


def end_read(state: StarsState) -> None:
    """End the read transaction the session holds, before waiting on the network or a clock.

    :param state: the extension's state. Nothing written is pending when this is called:
        it rolls back, so a caller with changes commits them first.
    """
    state.session.rollback()


def abandon(state: StarsState) -> None:
    """Roll back after a failure whose own error is the one worth raising.

    :param state: the extension's state. A rollback that fails too (the database went
        away) is logged at debug level, not raised over the first error.
    """
    try:
        state.session.rollback()
    except SQLAlchemyError:
        log.debug("rollback failed too", exc_info=True)
