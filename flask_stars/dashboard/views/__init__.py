"""``dashboard_bp``: the operator's pages, mounted by the host behind its own authentication.

    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=is_admin)
    app.register_blueprint(dashboard_bp, url_prefix="/admin", decorator=login_required,
                           actor=lambda: current_user.email)

Registering without ``access=`` or ``decorator=`` raises ``StarsConfigError``; ``actor=``
names the operator in the audit trail (the Activity page). One module per page
(``overview``, ``payments`` with the CSV, ``payment`` with Refund, ``updates`` with Replay
and Archive, ``reconcile``, ``subscriptions``, ``activity``); the blueprint, its hooks,
its error pages and what the pages share are in ``base``. Reads are aggregate SQL and
keyset pages (``dashboard.queries``, ``flask_stars.reports``); the actions that move
money, refund, replay and reconcile's Run now, are POSTs with a CSRF token and an explicit
confirmation, and go through the same code as ``flask stars refund`` (``operations.refund``),
``flask stars replay`` (``updates.replay``) and ``flask stars reconcile``
(``reconcile.reconcile``). Domain errors become pages here, at the edge.
"""

# The page modules are imported for their routes, which they add to dashboard_bp.
from . import activity, overview, payment, payments, reconcile, subscriptions, updates  # noqa: F401
from .base import DashboardBlueprint, dashboard_bp

__all__ = ["DashboardBlueprint", "dashboard_bp"]
