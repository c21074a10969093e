"""``python -m example_app``: run the example shop.

With no ``STARS_BOT_TOKEN`` (the default) it needs no Telegram account and no network:
the sandbox plays Telegram on 127.0.0.1, and ``/stars/sandbox/`` plays the Telegram
client around the Mini App. With ``STARS_BOT_TOKEN`` set (and ``--no-sandbox``), the
same app talks to the real Telegram; see the README for the webhook.
"""

from __future__ import annotations

import argparse
import os
import sys

from flask import Flask

from flask_stars import StarsConfigError, get_state
from flask_stars.sandbox import SANDBOX_TOKEN, Sandbox, attach_sandbox

from . import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument(
        "--no-sandbox", action="store_true", help="talk to the real Telegram (needs STARS_BOT_TOKEN)"
    )
    args = parser.parse_args(argv)
    base_url = f"http://{args.host}:{args.port}"

    if args.no_sandbox:
        if not os.environ.get("STARS_BOT_TOKEN"):
            parser.error("--no-sandbox needs STARS_BOT_TOKEN (from @BotFather) in the environment")
        app = create_app()
        if not tables_are_ours(app):
            return 1
        print(f"Serving the shop on {base_url} against the real Telegram.")
        print(
            "Expose it over HTTPS, set PUBLIC_URL, then: flask --app example_app stars set-webhook https://.../stars/webhook"
        )
        app.run(host=args.host, port=args.port, threaded=True)
        return 0

    sandbox = Sandbox(token=SANDBOX_TOKEN).start()
    app = create_app(
        {
            "STARS_BOT_TOKEN": SANDBOX_TOKEN,
            "STARS_API_URL": sandbox.url,
            "PUBLIC_URL": base_url,
            "SANDBOX": True,
        }
    )
    page = attach_sandbox(app, sandbox, base_url)
    if not tables_are_ours(app):
        sandbox.stop()
        return 1
    print(f"flask_stars example shop, with the sandbox playing Telegram (Bot API at {sandbox.url}).")
    print(f"Open {page} in your browser to buy coins as a test user.")
    print(f"The operator's dashboard: {base_url}/admin/ (password: {app.config['ADMIN_PASSWORD']})")
    sys.stdout.flush()
    try:
        app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    finally:
        sandbox.stop()
    return 0


def tables_are_ours(app: Flask) -> bool:
    """Check before serving that the database's stars_* tables belong to this run's bot.

    Each run of the sandbox plays the same bot (``SANDBOX_TOKEN``), so a restart on the
    same database goes on where it left off; tables of a real bot refuse it (and the other
    way round), with the way out in the message.
    """
    try:
        with app.app_context():
            get_state(app).database.ensure_ready()
    except StarsConfigError as exc:
        print(f"python -m example_app: {exc}", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
