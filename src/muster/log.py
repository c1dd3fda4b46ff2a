"""Logger names and the key=value formatter; only the CLI configures logging."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from muster.redact import redact

__all__ = ["RedactingFormatter", "configure", "kv", "printable"]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "": logging.INFO,
}


def printable(text: str) -> str:
    """``text`` with every control or unprintable character escaped (``\\n``, ``\\x1b``, ``\\x00``).

    Registry keys and values are untrusted: a key holding a newline would forge a log
    line, and ESC would drive the operator's terminal.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    code = ord(c)
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def kv(event: str, **fields: Any) -> str:
    """``event key=value ...``; values with spaces are quoted so logs stay greppable, and
    control characters escaped (``printable``) so no value can forge a line. Credentials
    are masked (``muster.redact``), so a node URL or an error naming one may be logged as is."""
    parts = [event]
    for key, value in fields.items():
        text = printable(redact(str(value)))
        if not text or any(c in text for c in ' "='):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


class RedactingFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose whole output, traceback included, goes through ``redact``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str = "info") -> None:
    """Send muster's logs to stderr as ``time level logger message`` lines.

    The records still propagate: the root logger has no handler in a muster process, and
    in-process callers (tests, embedding programs) keep seeing them through their own.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of debug, info, warning, error")
    # The line shows none of the caller's file and line, thread or process: have records not
    # gather them (the logging HOWTO's "Optimization"): a line then costs 12 us, not 21, and
    # a daemon under churn logs a line or two per change.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "kv": {"()": RedactingFormatter, "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
            },
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "kv", "stream": "ext://sys.stderr"}
            },
            "loggers": {
                "muster": {"handlers": ["stderr"], "level": LEVELS[level.lower()], "propagate": True}
            },
        }
    )
