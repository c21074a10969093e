"""Who is asking: the Mini App's initData from ``Authorization: tma <initData>``."""

from __future__ import annotations

from flask import request

from .errors import InvalidInitData
from .http_errors import InitDataRejected
from .initdata import InitData, validate_init_data
from .state import get_state


def request_init_data() -> InitData:
    """The checked initData of the current request, by the app's ``STARS_*`` settings.

    Host views can use it too, to know the Mini App's user. Raises ``InitDataRejected``
    (an ``InvalidInitData`` that Flask answers as HTTP 401) when the header is missing,
    forged or expired.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "tma" or not raw.strip():
        raise InitDataRejected("Send the Mini App's initData as 'Authorization: tma <initData>'.")
    settings = get_state().settings
    try:
        return validate_init_data(
            raw.strip(),
            settings.bot_token,
            max_age=settings.init_data_max_age,
            mode=settings.init_data_validation,
            public_key=settings.init_data_public_key,
        )
    except InvalidInitData as exc:
        raise InitDataRejected(exc.message, error=exc.error) from None
