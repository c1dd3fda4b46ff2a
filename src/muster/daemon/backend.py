"""Open the backend a ``Config`` names, and close one without letting it hang the exit."""

from __future__ import annotations

import asyncio
import logging

from muster.backends import BackendOptions, create
from muster.backends.base import Backend
from muster.config import Config
from muster.log import kv

__all__ = ["CLOSE_TIMEOUT", "close_backend", "create_backend"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0


def create_backend(config: Config) -> Backend:
    """The backend named by ``config.backend``, connected with confd's connection options."""
    options = BackendOptions(
        nodes=config.nodes,
        scheme=config.scheme,
        username=config.username,
        password=config.password,
        basic_auth=config.basic_auth,
        client_cert=config.client_cert,
        client_key=config.client_key,
        client_ca_keys=config.client_cakeys,
        client_insecure=config.client_insecure,
        files=config.files,
        filter=config.filter,
        separator=config.separator,
    )
    return create(config.backend, options)


async def close_backend(backend: Backend, timeout: float = CLOSE_TIMEOUT) -> None:
    """``backend.aclose()``, but never let a stuck connection keep the process from exiting."""
    try:
        async with asyncio.timeout(timeout):
            await backend.aclose()
    except TimeoutError:
        logger.warning(kv("backend.close.timeout", backend=type(backend).__name__, after_s=timeout))
