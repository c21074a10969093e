"""A Telegram Bot API emulator for Stars payments, on 127.0.0.1: no account, no network.

It answers the methods flask_stars uses the way Telegram's server does (telebot sends
every parameter in the query string, for GET and POST alike), records each call, keeps
a Stars ledger, and plays the buyer: ``pay()`` posts a ``pre_checkout_query`` to the
webhook with the secret, waits for the answer and, if approved, posts
``successful_payment``. It can also fail or delay a method, redeliver, and drop updates.

    with Sandbox(token=TOKEN) as tg:
        app.config["STARS_API_URL"] = tg.url
        tg.set_webhook_target("http://127.0.0.1:5000/stars/webhook", secret)
        link = ...  # POST /stars/invoice
        tg.pay(link, user=42)
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

XTR = "XTR"
SUBSCRIPTION_PERIOD = 2_592_000
PRE_CHECKOUT_DEADLINE = 10.0  # Telegram's: answer within 10 s or the payment fails


class QuietRequestHandler(WSGIRequestHandler):
    """werkzeug's handler without a log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class KeepAliveRequestHandler(QuietRequestHandler):
    """HTTP/1.1 with keep-alive, as Telegram's Bot API server speaks it."""

    protocol_version = "HTTP/1.1"


class ApiError(Exception):
    """Answered as ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@dataclass
class Call:
    """One Bot API request the sandbox received."""

    method: str
    params: dict[str, Any]
    token: str
    http_method: str
    at: float = field(default_factory=time.time)


@dataclass
class Invoice:
    """An invoice made by createInvoiceLink (``link`` set) or sendInvoice (``chat_id`` set)."""

    slug: str
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    subscription_period: int | None = None
    link: str | None = None
    chat_id: int | None = None
    message_id: int | None = None


@dataclass
class Fault:
    error_code: int | None = 500
    description: str = "Internal Server Error"
    retry_after: int | None = None
    delay: float = 0.0
    times: int = 1


@dataclass
class Delivery:
    """One webhook POST: the update and how the app answered."""

    update: dict[str, Any]
    status: int
    body: Any
    at: float = field(default_factory=time.time)


@dataclass
class PaymentAttempt:
    """What ``pay()`` saw: the pre-checkout answer and, if approved, the charge."""

    ok: bool
    query_id: str
    error_message: str | None = None
    charge_id: str | None = None
    pre_checkout: Delivery | None = None
    payment: Delivery | None = None
    payment_update: dict[str, Any] | None = None


#: Test users the sandbox page offers (one speaks Russian, to see the Russian texts).
TEST_USERS: list[dict[str, Any]] = [
    {"id": 111111, "is_bot": False, "first_name": "Ann", "username": "ann_test", "language_code": "en"},
    {"id": 222222, "is_bot": False, "first_name": "Иван", "username": "ivan_test", "language_code": "ru"},
    {"id": 333333, "is_bot": False, "first_name": "Bob", "username": "bob_test", "language_code": "en"},
]
#: A token for sandbox runs: no real bot has it.
SANDBOX_TOKEN = "100000001:SANDBOX-flask-stars-no-real-bot"


def make_user(user: int | dict[str, Any], language_code: str = "en") -> dict[str, Any]:
    """A Telegram ``User`` object for an id (or the dict given)."""
    if isinstance(user, dict):
        return user
    return {"id": user, "is_bot": False, "first_name": f"User {user}", "language_code": language_code}


class Sandbox:
    """The emulator. ``token`` restricts it to one bot (others get 401, as on Telegram)."""

    def __init__(self, token: str | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.calls: list[Call] = []
        self.invoices: dict[str, Invoice] = {}
        self.transactions: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.webhook: dict[str, Any] = {}
        self.balance = 0
        self.answer_in_response = True  # accept a method call in the webhook's reply, as Telegram does
        self.deliver_refund_updates = True  # send refunded_payment after a refund, as Telegram does
        self._faults: dict[str, list[Fault]] = {}
        self._answers: dict[str, dict[str, Any]] = {}
        self._charges: dict[str, dict[str, Any]] = {}
        self._refunded: set[str] = set()
        self._subscriptions: dict[str, dict[str, Any]] = {}  # first charge id -> expiry, cancelled
        self._cond = threading.Condition()
        # Microseconds since the epoch: ids keep growing across restarts, as Telegram's do.
        self._ids = itertools.count(time.time_ns() // 1000)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._http = requests.Session()
        self._background: list[threading.Thread] = []

    # --- life -------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        self._server = make_server(
            self.host, self.port, self._wsgi, threaded=True, request_handler=KeepAliveRequestHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stars-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for t in self._background:
            t.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._http.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give as ``STARS_API_URL``."""
        return f"http://{self.host}:{self.port}"

    def set_webhook_target(self, url: str, secret: str | None) -> None:
        """Where updates go (what setWebhook would set), without a Bot API call."""
        self.webhook = {"url": url, "secret_token": secret}

    # --- inspection and faults ---------------------------------------------------------

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call to ``method``, oldest first."""
        with self._cond:
            return [c.params for c in self.calls if c.method == method]

    def fail(
        self,
        method: str,
        error_code: int = 500,
        description: str = "Internal Server Error",
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail as Telegram would."""
        self._faults.setdefault(method, []).append(
            Fault(error_code, description, retry_after=retry_after, times=times)
        )

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls to ``method`` answer only after ``seconds``."""
        self._faults.setdefault(method, []).append(Fault(None, "", delay=seconds, times=times))

    def invoice(self, ref: str | Invoice) -> Invoice:
        """An invoice by link (``https://t.me/$slug``), slug or payload."""
        if isinstance(ref, Invoice):
            return ref
        with self._cond:
            slug = _slug_of(ref)
            if slug in self.invoices:
                return self.invoices[slug]
            for inv in reversed(list(self.invoices.values())):
                if inv.payload == ref:
                    return inv
        raise KeyError(f"no invoice {ref!r} in the sandbox")

    def last_invoice(self, chat_id: int | None = None) -> Invoice:
        """The newest invoice (sent to ``chat_id``, if given)."""
        with self._cond:
            for inv in reversed(list(self.invoices.values())):
                if chat_id is None or inv.chat_id == chat_id:
                    return inv
        raise KeyError("the sandbox has made no invoice")

    def wait_for_call(self, method: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until ``method`` was called ``count`` times; return the calls."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{method} was not called {count} time(s) within {timeout} s")
                self._cond.wait(left)
            return [c.params for c in self.calls if c.method == method]

    # --- playing Telegram: updates -----------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

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

    def _method_in_reply(self, body: Any) -> None:
        if self.answer_in_response and isinstance(body, dict) and isinstance(body.get("method"), str):
            params = {k: v for k, v in body.items() if k != "method"}
            self._record(Call(body["method"], params, self.token or "", "WEBHOOK-REPLY"))
            if body["method"] == "answerPreCheckoutQuery":
                self._answer_pre_checkout(params)

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

    def send_text(self, user: int | dict[str, Any], text: str) -> Delivery:
        """The user writes ``text`` to the bot in a private chat (e.g. ``/buy_stars``)."""
        update = self.message_update(user, text=text)
        if text.startswith("/"):
            update["message"]["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return self.deliver(update)

    def press_button(
        self, user: int | dict[str, Any], callback_data: str, chat_id: int | None = None
    ) -> Delivery:
        """The user presses an inline button carrying ``callback_data``."""
        u = make_user(user)
        update = {
            "update_id": self.next_id(),
            "callback_query": {
                "id": str(self.next_id()),
                "from": u,
                "chat_instance": "1",
                "data": callback_data,
                "message": {
                    "message_id": self.next_id(),
                    "date": int(time.time()),
                    "chat": {"id": chat_id or u["id"], "type": "private"},
                    "text": "…",
                },
            },
        }
        return self.deliver(update)

    def pay(
        self,
        invoice: str | Invoice,
        user: int | dict[str, Any],
        *,
        total_amount: int | None = None,
        currency: str | None = None,
        deliver_payment: bool = True,
        retries: int = 0,
        answer_timeout: float = PRE_CHECKOUT_DEADLINE,
    ) -> PaymentAttempt:
        """The user presses Pay: pre-checkout, then (if approved) the charge and its update.

        ``deliver_payment=False`` charges but never sends ``successful_payment`` (a lost
        webhook, for reconciliation). ``retries`` resends updates answered non-2xx.
        """
        inv = self.invoice(invoice)
        u = make_user(user)
        query_id = str(self.next_id())
        pre = self.deliver(
            {
                "update_id": self.next_id(),
                "pre_checkout_query": {
                    "id": query_id,
                    "from": u,
                    "currency": currency or inv.currency,
                    "total_amount": inv.amount if total_amount is None else total_amount,
                    "invoice_payload": inv.payload,
                },
            },
            retries=retries,
        )
        answer = self._wait_answer(query_id, answer_timeout)
        if answer is None:
            return PaymentAttempt(False, query_id, "pre-checkout not answered in time", pre_checkout=pre)
        if not _truthy(answer.get("ok")):
            return PaymentAttempt(False, query_id, answer.get("error_message"), pre_checkout=pre)
        charge_id, update = self.charge(inv, u, total_amount=total_amount, currency=currency)
        attempt = PaymentAttempt(True, query_id, charge_id=charge_id, pre_checkout=pre, payment_update=update)
        if deliver_payment:
            attempt.payment = self.deliver(update, retries=retries)
        return attempt

    def charge(
        self,
        invoice: str | Invoice,
        user: int | dict[str, Any],
        *,
        total_amount: int | None = None,
        currency: str | None = None,
        renewal_of: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Take the Stars (ledger entry) and build the ``successful_payment`` update, unsent."""
        inv = self.invoice(invoice)
        u = make_user(user)
        amount = inv.amount if total_amount is None else total_amount
        charge_id = "stx" + secrets.token_urlsafe(24)
        now = int(time.time())
        source: dict[str, Any] = {
            "type": "user",
            "transaction_type": "invoice_payment",
            "user": u,
            "invoice_payload": inv.payload,
        }
        payment: dict[str, Any] = {
            "currency": currency or inv.currency,
            "total_amount": amount,
            "invoice_payload": inv.payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
        }
        with self._cond:
            self._charges[charge_id] = {
                "user_id": u["id"],
                "amount": amount,
                "payload": inv.payload,
                "slug": inv.slug,
            }
            if inv.subscription_period:
                source["subscription_period"] = inv.subscription_period
                if renewal_of is None:
                    self._subscriptions[charge_id] = {"expires": now + SUBSCRIPTION_PERIOD, "canceled": False}
                    payment["is_first_recurring"] = True
                payment["is_recurring"] = True
                payment["subscription_expiration_date"] = self._subscriptions[renewal_of or charge_id][
                    "expires"
                ]
            self.balance += amount
            self.transactions.append({"id": charge_id, "amount": amount, "date": now, "source": source})
        return charge_id, self.message_update(u, successful_payment=payment)

    def _wait_answer(self, query_id: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while query_id not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._answers[query_id]

    # --- the Bot API -------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return Response("not found", 404)(environ, start_response)
        token, method = parts[0][3:], parts[1]
        params: dict[str, Any] = dict(request.args)
        params.update(request.form)
        if request.is_json:
            params.update(request.get_json(silent=True) or {})
        call = Call(method, params, token, request.method)
        try:
            if self.token is not None and token != self.token:
                raise ApiError(401, "Unauthorized")
            self._record(call)
            self._apply_faults(method)
            handler = getattr(self, "_api_" + method, None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = handler({**params, "__token__": token} if method == "getMe" else params)
            body: dict[str, Any] = {"ok": True, "result": result}
            status = 200
        except ApiError as exc:
            body = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            status = exc.code
        return Response(json.dumps(body), status, mimetype="application/json")(environ, start_response)

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _apply_faults(self, method: str) -> None:
        with self._cond:
            queue = self._faults.get(method) or []
            fault = queue[0] if queue else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
        if fault is None:
            return
        if fault.delay:
            time.sleep(fault.delay)
        if fault.error_code is not None:
            raise ApiError(fault.error_code, fault.description, fault.retry_after)

    def _api_getMe(self, p: dict[str, Any]) -> dict[str, Any]:
        bot_id = int(str(p.get("__token__") or "1:x").split(":")[0])
        return {"id": bot_id, "is_bot": True, "first_name": "Sandbox Bot", "username": "sandbox_stars_bot"}

    def _invoice_from(self, p: dict[str, Any]) -> Invoice:
        for name in ("title", "description", "payload", "currency", "prices"):
            if not p.get(name):
                raise ApiError(400, f'Bad Request: parameter "{name}" is required')
        if not 1 <= len(p["title"]) <= 32:
            raise ApiError(400, "Bad Request: invoice title length must be 1-32")
        if not 1 <= len(p["description"]) <= 255:
            raise ApiError(400, "Bad Request: invoice description length must be 1-255")
        if not 1 <= len(p["payload"].encode()) <= 128:
            raise ApiError(400, "Bad Request: invoice payload length must be 1-128 bytes")
        try:
            prices = json.loads(p["prices"]) if isinstance(p["prices"], str) else p["prices"]
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse prices JSON object") from None
        if not isinstance(prices, list) or not prices:
            raise ApiError(400, "Bad Request: there must be at least one price")
        for price in prices:
            if not isinstance(price, dict) or not price.get("label"):
                raise ApiError(400, "Bad Request: LabeledPrice label must be non-empty")
            if not isinstance(price.get("amount"), int) or price["amount"] <= 0:
                raise ApiError(400, "Bad Request: can't parse prices JSON object")
        period = p.get("subscription_period")
        if p["currency"] == XTR:
            if len(prices) != 1 or p.get("provider_token") or p.get("max_tip_amount"):
                raise ApiError(400, "Bad Request: STARS_INVOICE_INVALID")
            if period is not None and (int(period) != SUBSCRIPTION_PERIOD or prices[0]["amount"] > 10_000):
                raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        elif not p.get("provider_token"):
            raise ApiError(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
        return Invoice(
            slug=secrets.token_urlsafe(12),
            title=p["title"],
            description=p["description"],
            payload=p["payload"],
            currency=p["currency"],
            amount=sum(price["amount"] for price in prices),
            subscription_period=int(period) if period is not None else None,
        )

    def _api_createInvoiceLink(self, p: dict[str, Any]) -> str:
        inv = self._invoice_from(p)
        inv.link = f"https://t.me/${inv.slug}"
        with self._cond:
            self.invoices[inv.slug] = inv
        return inv.link

    def _api_sendInvoice(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("subscription_period"):
            raise ApiError(400, "Bad Request: subscription_period is not supported by sendInvoice")
        chat_id = _int(p.get("chat_id"), "chat_id")
        inv = self._invoice_from(p)
        inv.chat_id = chat_id
        inv.message_id = self.next_id()
        with self._cond:
            self.invoices[inv.slug] = inv
        return {
            "message_id": inv.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "invoice": {
                "title": inv.title,
                "description": inv.description,
                "start_parameter": "",
                "currency": inv.currency,
                "total_amount": inv.amount,
            },
        }

    def _api_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat_id = _int(p.get("chat_id"), "chat_id")
        if not p.get("text"):
            raise ApiError(400, "Bad Request: message text is empty")
        return {
            "message_id": self.next_id(),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": p["text"],
        }

    def _api_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        return True

    def _api_answerPreCheckoutQuery(self, p: dict[str, Any]) -> bool:
        self._answer_pre_checkout(p)
        return True

    def _answer_pre_checkout(self, p: dict[str, Any]) -> None:
        query_id = str(p.get("pre_checkout_query_id") or "")
        if not query_id:
            raise ApiError(400, 'Bad Request: parameter "pre_checkout_query_id" is required')
        ok = _truthy(p.get("ok"))
        if not ok and not p.get("error_message"):
            raise ApiError(400, 'Bad Request: parameter "error_message" is required')
        with self._cond:
            if query_id in self._answers:
                raise ApiError(
                    400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
                )
            self._answers[query_id] = {"ok": ok, "error_message": p.get("error_message")}
            self._cond.notify_all()

    def _api_refundStarPayment(self, p: dict[str, Any]) -> bool:
        user_id = _int(p.get("user_id"), "user_id", "Bad Request: invalid user_id specified")
        charge_id = p.get("telegram_payment_charge_id")
        if not charge_id:
            raise ApiError(400, 'Bad Request: parameter "telegram_payment_charge_id" is required')
        with self._cond:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id:
                raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
            if charge_id in self._refunded:
                raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
            self._record_refund(charge_id)  # under the same lock: two refunds cannot both pass
        return True

    def _record_refund(self, charge_id: str) -> dict[str, Any]:
        """Take the Stars back (ledger entry) and, as Telegram does, send ``refunded_payment``."""
        with self._cond:
            charge = self._charges[charge_id]
            self._refunded.add(charge_id)
            self.balance -= charge["amount"]
            self.transactions.append(
                {
                    "id": charge_id,
                    "amount": charge["amount"],
                    "date": int(time.time()),
                    "receiver": {
                        "type": "user",
                        "transaction_type": "invoice_payment",
                        "user": make_user(charge["user_id"]),
                        "invoice_payload": charge["payload"],
                    },
                }
            )
        update = self.message_update(
            charge["user_id"],
            refunded_payment={
                "currency": XTR,
                "total_amount": charge["amount"],
                "invoice_payload": charge["payload"],
                "telegram_payment_charge_id": charge_id,
            },
        )
        if self.deliver_refund_updates and self.webhook.get("url"):
            self._deliver_later(update)
        return update

    def _deliver_later(self, update: dict[str, Any]) -> None:
        thread = threading.Thread(target=self.deliver, args=(update,), kwargs={"retries": 3}, daemon=True)
        self._background.append(thread)
        thread.start()

    def refund(self, charge_id: str) -> dict[str, Any]:
        """A refund made outside the bot (say, by Telegram support): the ledger entry and the
        ``refunded_payment`` update, delivered unless ``deliver_refund_updates`` is off."""
        with self._cond:
            if charge_id not in self._charges:
                raise KeyError(f"no charge {charge_id!r} in the sandbox")
            if charge_id in self._refunded:
                raise ValueError(f"charge {charge_id!r} is already refunded")
            return self._record_refund(charge_id)

    def renew(self, first_charge_id: str, *, deliver: bool = True) -> tuple[str, dict[str, Any]]:
        """Telegram renews a subscription: a new charge for the same invoice, ``is_recurring``."""
        with self._cond:
            first = self._charges[first_charge_id]
            inv = self.invoices[first["slug"]]
            sub = self._subscriptions[first_charge_id]
            if sub["canceled"]:
                raise ValueError("the subscription is cancelled: Telegram would not renew it")
            sub["expires"] += SUBSCRIPTION_PERIOD
        charge_id, update = self.charge(inv, first["user_id"], renewal_of=first_charge_id)
        if deliver:
            self.deliver(update)
        return charge_id, update

    def subscription_update(self, user: int | dict[str, Any], invoice_payload: str, state: str) -> Delivery:
        """The ``subscription`` update: the user cancelled (``canceled``), re-enabled
        (``active``), or a renewal failed (``failed``)."""
        if state in ("canceled", "active"):
            with self._cond:
                for charge_id, sub in self._subscriptions.items():
                    if self._charges[charge_id]["payload"] == invoice_payload:
                        sub.update(
                            canceled=state == "canceled", canceled_by="user" if state == "canceled" else None
                        )
        return self.deliver(
            {
                "update_id": self.next_id(),
                "subscription": {"user": make_user(user), "invoice_payload": invoice_payload, "state": state},
            }
        )

    def _api_editUserStarSubscription(self, p: dict[str, Any]) -> bool:
        user_id = _int(p.get("user_id"), "user_id", "Bad Request: invalid user_id specified")
        charge_id = p.get("telegram_payment_charge_id") or ""
        with self._cond:
            charge = self._charges.get(charge_id)
            if charge is None or charge["user_id"] != user_id or charge_id not in self._subscriptions:
                raise ApiError(400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
            sub = self._subscriptions[charge_id]
            canceled = _truthy(p.get("is_canceled"))
            if not canceled and sub.get("canceled_by") == "user":
                raise ApiError(400, "Bad Request: SUBSCRIPTION_CANCELED_BY_USER")
            sub["canceled"] = canceled
            sub["canceled_by"] = "bot" if canceled else None
        return True

    def _api_getStarTransactions(self, p: dict[str, Any]) -> dict[str, Any]:
        offset = int(p.get("offset") or 0)
        limit = max(1, min(int(p.get("limit") or 100), 100))
        with self._cond:
            return {"transactions": self.transactions[offset : offset + limit]}

    def _api_getMyStarBalance(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"amount": self.balance}

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


def _slug_of(ref: str) -> str:
    if ref.startswith(("http://", "https://")):
        path = urlparse(ref).path
        return path.rsplit("/", 1)[-1].lstrip("$")
    return ref.lstrip("$")


def _truthy(value: Any) -> bool:
    # The Bot API server's to_bool: "true", "yes" or "1", any case (telebot sends "True").
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1")


def _int(value: Any, name: str, error: str | None = None) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, error or f'Bad Request: parameter "{name}" is required') from None
