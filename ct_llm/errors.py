"""Errors a user can hit. The CLI prints their message as one line and exits non-zero."""


class CtLlmError(Exception):
    """A problem the user can fix: the message says what was wrong and what to do."""

    exit_code = 2


class WorkspaceError(CtLlmError):
    """The workspace is missing, not initialised or inconsistent."""


class ConfigError(CtLlmError):
    """A config file, recipe or override is invalid."""


class ServingError(CtLlmError):
    """The vLLM server could not be started, reached or asked to load an adapter."""


class NoDataError(CtLlmError):
    """There is nothing to curate or train on."""


class RegistryError(CtLlmError):
    """A model version, alias or decision does not exist or is in the wrong state."""


class BusyError(CtLlmError):
    """Another job holds the lock this one needs (e.g. a training of the same tenant)."""

    exit_code = 3


class IntegrityError(CtLlmError):
    """An artifact's files differ from the sha256 recorded when it was written."""
