"""Service registration: keep ``PREFIX/NAME/servers/ID`` in the registry while a service is healthy.

``registration()`` (async) and ``sync_registration()`` (threads) are the Python API;
``muster register`` (``muster.cli.register``) is the same logic on the command line.
"""

from __future__ import annotations

from muster.registration.api import Registration, SyncRegistration, registration, sync_registration
from muster.registration.health import Check, CheckResult, CommandCheck, HttpCheck, TcpCheck
from muster.registration.validate import RegistrationSpec

__all__ = [
    "Check",
    "CheckResult",
    "CommandCheck",
    "HttpCheck",
    "Registration",
    "RegistrationSpec",
    "SyncRegistration",
    "TcpCheck",
    "registration",
    "sync_registration",
]
