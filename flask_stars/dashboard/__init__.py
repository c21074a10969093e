"""The operator's dashboard: Stars per day, payments, refunds and replays, in a browser.

Mount it behind your own authentication; it refuses to register without an access check::

    from flask_stars.dashboard import dashboard_bp

    app.register_blueprint(dashboard_bp, url_prefix="/admin", access=lambda: current_user.is_admin)
    # or: decorator=login_required (a view decorator of your own), language="ru" or a callable

See the docs' dashboard guide (docs/howto/dashboard.md).
"""

from .security import CSRFError, DashboardOptions
from .views import DashboardBlueprint, dashboard_bp

__all__ = ["CSRFError", "DashboardBlueprint", "DashboardOptions", "dashboard_bp"]
