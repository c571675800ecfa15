"""Keep the bot token and the webhook secret out of every log line.

A Bot API URL contains the token: HTTP libraries log request URLs (PTB's default, httpx, does
at INFO) and their exceptions can quote them. The webhook secret must not leak either.
The filter sits on the root handlers, so records from every logger pass through it.
"""

from __future__ import annotations

import logging

MASK = "<redacted>"


class SecretsFilter(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            message = message.replace(secret, MASK)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, MASK)
        record.msg, record.args = message, None
        return True


def hide_secrets(*secrets: str) -> SecretsFilter:
    """Mask ``secrets`` in everything the root logger's handlers write."""
    secret_filter = SecretsFilter(list(secrets))
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return secret_filter
