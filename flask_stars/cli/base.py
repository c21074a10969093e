"""What every ``flask stars`` command shares: its error edge, and tables or JSON.

A domain error ends a command as one line and exit code 1 (``click.ClickException``),
never a traceback; this is the only place the CLI turns errors into exits. A command
names the step it takes (``step``) so that a failure of the host's callback in it says
what failed and what it left.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import BotApiError, HostCallbackFailed, StarsError

F = TypeVar("F", bound=Callable[..., Any])
_STEP = "flask_stars.step"  # the key of the current step in click's context meta


def stars_errors(fn: F) -> F:
    """Turn a domain error into one clear line and exit code 1.

    A Bot API failure says which it was: "Telegram said: ..." when Telegram answered with
    an error, "Telegram could not be reached (...)" when no answer came. A failure of the
    host's credit or debit callback says which callback, what it raised and, within a named
    ``step``, what failed and what that left.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HostCallbackFailed as exc:
            raise click.ClickException(_callback_failed(exc)) from None
        except BotApiError as exc:
            raise click.ClickException(exc.summary) from None
        except StarsError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper  # type: ignore[return-value]


def step(what: str, left: str) -> None:
    """Name the step the command takes next (``"refund of CHARGE"``) and what a failure of the
    host's callback in it leaves (``"the ledger is unchanged. ..."``), for ``stars_errors``."""
    click.get_current_context().meta[_STEP] = (what, left)


def _callback_failed(exc: HostCallbackFailed) -> str:
    """The one line of a host callback's failure: in the command's named step if it has one."""
    named: tuple[str, str] | None = click.get_current_context().meta.get(_STEP)
    if named is None:
        return exc.message
    what, left = named
    return f"{what} failed: {exc.reason} (your {exc.callback} callback); {left}"


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """``rows`` as JSON (``--json``) or as a table with a header, one row a line."""
    if as_json:
        click.echo(json.dumps(rows, default=str, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())
