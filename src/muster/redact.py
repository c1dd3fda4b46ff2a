"""Masks credentials in text meant for people: URL userinfo and the secrets muster was given.

Everything muster writes for people to read (log lines through ``muster.log``, error
messages, ``/status``) goes through ``redact``: ``http://root:pw@h:2379`` becomes
``http://***@h:2379``, and every secret registered with ``add_secret`` (the etcd
password, the userinfo of each node URL) becomes ``***`` wherever it turns up, in an
exception message or a traceback as much as in a ``key=value`` field.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["MIN_SECRET", "add_secret", "add_url_secrets", "redact"]

# The authority of a URL runs to the first "/", "?", "#" or blank; greedy, so a password
# holding a raw "@" is masked up to the last "@" (where URL parsers end the userinfo).
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_secrets: set[str] = set()
_ordered: list[str] = []

#: Secrets shorter than this are not replaced as plain text (they would mangle every
#: line); inside a URL's userinfo they are masked all the same.
MIN_SECRET = 4


def add_secret(secret: str) -> None:
    """Have ``redact`` replace ``secret`` (and its percent-decoded form) wherever it appears."""
    global _ordered
    for text in (secret, unquote(secret)):
        if len(text) >= MIN_SECRET:
            _secrets.add(text)
    # Longest first, so a secret that contains another is replaced whole.
    _ordered = sorted(_secrets, key=len, reverse=True)


def add_url_secrets(url: str) -> None:
    """Register the password of ``url``'s userinfo (a ``node``), if it has one."""
    try:
        password = urlsplit(url if "://" in url else "//" + url).password
    except ValueError:
        return
    if password:
        add_secret(password)


def redact(text: str) -> str:
    """``text`` with every URL's userinfo and every registered secret replaced by ``***``."""
    if "@" in text:
        text = _USERINFO.sub(r"\1***@", text)
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, "***")
    return text
