"""Keep the bot token and the webhook secret out of everything the process writes.

A Bot API URL contains the token: HTTP libraries log request URLs, their errors and a proxy's
error pages quote them, and PTB's own errors quote the token. So every output path goes
through ``mask``: the log (a filter on the root handlers, which every logger reaches), the
command line's messages and its one-line errors (bot/cli/main.py).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

MASK = "<redacted>"
_SECRETS: list[str] = []  # longest first, so a token is masked whole, not its part


def mask(text: str) -> str:
    """``text`` with every secret registered by ``hide_secrets`` replaced by MASK."""
    for secret in _SECRETS:
        text = text.replace(secret, MASK)
    return text


class SecretsFilter(logging.Filter):
    """Masks the secrets in a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        record.msg, record.args = mask(record.getMessage()), None
        return True


_FILTER = SecretsFilter()


def hide_secrets(*secrets: str) -> None:
    """Mask ``secrets`` from now on, in the log (every root handler) and in ``mask``.

    A bot token's part after the colon is the secret one: masked on its own too, and so is
    each secret's URL-quoted form.
    """
    for secret in (s for s in secrets if s):
        forms = {quote(secret, safe="")}
        if ":" in secret:
            forms.add(secret.partition(":")[2])
        forms = {form for form in forms if len(form) >= 8}  # a short part would garble text
        _SECRETS.extend(form for form in {secret, *forms} if form not in _SECRETS)
    _SECRETS.sort(key=len, reverse=True)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
