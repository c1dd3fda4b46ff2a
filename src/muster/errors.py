"""Every exception muster raises, in one leaf module that imports nothing of muster.

```
Error                              exit 1
├── ConfigError                    exit 2   bad TOML, unknown backend, invalid flag
│   └── FlagError                           a command line Go's flag package rejects
├── TemplateError
│   ├── TemplateSyntaxError        name, line, col
│   └── TemplateExecError          name, line, col
├── BackendError
│   ├── BackendUnavailable         retried with backoff
│   ├── WatchUnsupported
│   └── RevisionCompacted          triggers a full re-sync
├── ResourceError
│   ├── CommandFailed              cmd, returncode, output (check or reload)
│   └── ShadowError                the nginx config cannot be shadowed for a check
├── AdminError                     a data plane's admin endpoint failed (nginx's Lua, HAProxy)
│   └── RuntimeAPIError            HAProxy's runtime API in particular
└── RegistrationError
    └── LeaseLost
```

Foreign errors (aiohttp, OSError, tomllib) are mapped to these at each boundary and
raised ``from`` the original, so callers only ever catch this tree.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AdminError",
    "BackendError",
    "BackendUnavailable",
    "CommandFailed",
    "ConfigError",
    "Error",
    "FlagError",
    "LeaseLost",
    "RegistrationError",
    "ResourceError",
    "RevisionCompacted",
    "RuntimeAPIError",
    "ShadowError",
    "TemplateError",
    "TemplateExecError",
    "TemplateSyntaxError",
    "WatchUnsupported",
]


class Error(Exception):
    """Base of every muster error; ``exit_code`` is what the CLI exits with."""

    exit_code: ClassVar[int] = 1


class ConfigError(Error):
    """Invalid configuration: a bad TOML file, flag or backend name."""

    exit_code: ClassVar[int] = 2


class TemplateError(Error):
    """A template failed to parse or execute.

    ``str()`` keeps Go's shape, ``template: NAME:LINE:COL: message``; the parts are
    also available as attributes for programs.
    """

    def __init__(self, message: str, *, name: str = "", line: int = 0, col: int = 0) -> None:
        self.message = message
        self.name = name
        self.line = line
        self.col = col
        super().__init__(self._format())

    def _format(self) -> str:
        if not self.name:
            return f"template: {self.message}"
        where = f"{self.name}:{self.line}" if self.line else self.name
        if self.col:
            where += f":{self.col}"
        return f"template: {where}: {self.message}"


class TemplateSyntaxError(TemplateError):
    """The template source does not parse."""


class TemplateExecError(TemplateError):
    """Executing a parsed template failed (a bad index, a missing key, a func error)."""


class BackendError(Error):
    """The key/value store failed or refused a request."""


class BackendUnavailable(BackendError):
    """No endpoint answered; callers retry with backoff."""


class WatchUnsupported(BackendError):
    """The backend cannot watch; the daemon polls on an interval instead."""


class RevisionCompacted(BackendError):
    """The watch start revision was compacted away; re-read everything."""

    def __init__(self, message: str, *, compact_revision: int | None = None) -> None:
        self.compact_revision = compact_revision
        super().__init__(message)


class ResourceError(Error):
    """A template resource could not be rendered, checked, written or reloaded."""


class CommandFailed(ResourceError):
    """A check or reload command exited non-zero or timed out."""

    def __init__(self, cmd: str, returncode: int | None, output: str, *, what: str = "command") -> None:
        self.cmd = cmd
        self.returncode = returncode
        self.output = output
        self.what = what
        status = "timed out" if returncode is None else f"exited with status {returncode}"
        tail = output.strip()
        detail = f": {tail}" if tail else ""
        super().__init__(f"{what} {cmd!r} {status}{detail}")


class RegistrationError(Error):
    """A service could not be registered, or its registration was invalid."""


class LeaseLost(RegistrationError):
    """The lease or TTL behind a registration expired; the agent registers again."""


class FlagError(ConfigError):
    """A command line Go's ``flag`` package would reject; the message is Go's."""


class ShadowError(ResourceError):
    """The configuration cannot be shadowed (replaced file not included, unreadable file)."""


class AdminError(Error):
    """A data plane's admin endpoint is unreachable or refused a push."""


class RuntimeAPIError(AdminError):
    """HAProxy's stats socket is unreachable, refused a command, or answered unreadably.

    An ``AdminError``: whoever drives a data plane (``MembershipSink``) handles both alike.
    """
