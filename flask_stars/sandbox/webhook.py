"""The sandbox's side of the app's webhook: where updates go, and posting them there.

``Webhook`` keeps the target (``set_webhook_target`` or the app's ``setWebhook``), builds
message updates, POSTs updates with the secret header (retrying non-2xx, or later in a
background thread), records each ``Delivery``, and takes a Bot API call the app puts in its
webhook reply, as Telegram does.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from .server import ApiError, ApiServer, Call

__all__ = ["Delivery", "Webhook", "make_user"]

#: Methods the sandbox carries out when the app answers with them in its webhook reply
#: (others are only recorded).
REPLY_METHODS = frozenset({"answerPreCheckoutQuery"})


@dataclass
class Delivery:
    """One webhook POST: the update and how the app answered."""

    update: dict[str, Any]
    status: int
    body: Any
    at: float = field(default_factory=time.time)


def make_user(user: int | dict[str, Any], language_code: str = "en") -> dict[str, Any]:
    """A Telegram ``User`` object for an id (or the dict given)."""
    if isinstance(user, dict):
        return user
    return {"id": user, "is_bot": False, "first_name": f"User {user}", "language_code": language_code}


class Webhook(ApiServer):
    """Delivers updates to the app's webhook, as Telegram does."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host=host, port=port)
        self.deliveries: list[Delivery] = []
        self.webhook: dict[str, Any] = {}
        self.answer_in_response = True  # accept a method call in the webhook's reply, as Telegram does
        self._http = requests.Session()
        self._background: list[threading.Thread] = []

    def stop(self) -> None:
        """Wait for background deliveries, stop serving, and close the HTTP session."""
        for t in self._background:
            t.join(timeout=5)
        super().stop()
        self._http.close()

    def set_webhook_target(self, url: str, secret: str | None) -> None:
        """Where updates go (what setWebhook would set), without a Bot API call."""
        self.webhook = {"url": url, "secret_token": secret}

    # --- updates out -------------------------------------------------------------------

    def message_update(self, user: int | dict[str, Any], **content: Any) -> dict[str, Any]:
        """An update carrying a message from ``user`` in their private chat with the bot."""
        u = make_user(user)
        message: dict[str, Any] = {
            "message_id": self.next_id(),
            "from": u,
            "chat": {"id": u["id"], "type": "private", "first_name": u.get("first_name", "")},
            "date": int(time.time()),
            **content,
        }
        return {"update_id": self.next_id(), "message": message}

    def deliver(self, update: dict[str, Any], *, retries: int = 0, timeout: float = 30.0) -> Delivery:
        """POST ``update`` to the webhook with the secret; resend up to ``retries`` times on non-2xx."""
        if not self.webhook.get("url"):
            raise RuntimeError("no webhook: call set_webhook_target() or setWebhook first")
        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        for attempt in range(retries + 1):
            resp = self._http.post(
                self.webhook["url"], data=json.dumps(update), headers=headers, timeout=timeout
            )
            try:
                body: Any = resp.json()
            except ValueError:
                body = resp.text
            delivery = Delivery(update, resp.status_code, body)
            with self._cond:
                self.deliveries.append(delivery)
            if 200 <= resp.status_code < 300:
                self._method_in_reply(body)
                return delivery
            if attempt < retries:
                time.sleep(0.05)
        return delivery

    def _deliver_later(self, update: dict[str, Any]) -> None:
        thread = threading.Thread(target=self.deliver, args=(update,), kwargs={"retries": 3}, daemon=True)
        self._background.append(thread)
        thread.start()

    def _method_in_reply(self, body: Any) -> None:
        if self.answer_in_response and isinstance(body, dict) and isinstance(body.get("method"), str):
            method: str = body["method"]
            params = {k: v for k, v in body.items() if k != "method"}
            self._record(Call(method, params, self.token or "", "WEBHOOK-REPLY"))
            if method in REPLY_METHODS:
                getattr(self, "_api_" + method)(params)

    # --- the Bot API: the webhook ------------------------------------------------------

    def _api_setWebhook(self, p: dict[str, Any]) -> bool:
        url = p.get("url", "")
        secret = p.get("secret_token")
        if secret and (len(secret) > 256 or not all(c.isalnum() or c in "_-" for c in secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        allowed = p.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        self.webhook = {"url": url, "secret_token": secret, "allowed_updates": allowed}
        return True

    def _api_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = {}
        return True

    def _api_getWebhookInfo(self, p: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if self.webhook.get("allowed_updates") is not None:
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info
