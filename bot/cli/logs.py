"""One line per log record from the libraries under the bot, unless ``-v``.

PTB logs a proxy's HTML error page with the JSON error's traceback, aiohttp a refused
connection with its own; StageCoach handles those errors and logs what they mean in one line.
Their tracebacks say nothing an operator can act on, so outside ``-v`` a record from another
package keeps its message and the exception's kind only. StageCoach's own tracebacks stay:
they are bugs to report.
"""

from __future__ import annotations

import logging

OWN_PACKAGES = ("bot", "storage", "flows")


class LibraryTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.split(".")[0] not in OWN_PACKAGES:
            kind = record.exc_info[0].__name__ if record.exc_info[0] else "error"
            record.msg, record.args = f"{record.getMessage()} ({kind})", None
            record.exc_info, record.exc_text = None, None
        return True


def quiet_library_tracebacks() -> None:
    """Install the filter on every root handler (each record passes them)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(LibraryTracebacks())
