"""One exception hierarchy for adapterhub.

Every message says what went wrong and what to do next. The CLI prints ``str(error)`` on one
line and exits with ``error.exit_code``; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations


class AdapterHubError(Exception):
    """Base class of every error adapterhub raises on purpose."""

    exit_code = 1


class UsageError(AdapterHubError):
    """The user asked for something malformed (bad flag value, unknown name)."""

    exit_code = 2


class InputError(UsageError):
    """One input of a request cannot be processed as given (no words, bad characters)."""


class InputTooLongError(InputError):
    """An input is longer than the adapter can read and cutting it would lose answers."""


class BackboneError(AdapterHubError):
    """The backbone cannot be provisioned, found or loaded."""


class ProvisionError(BackboneError):
    """Building the embedded backbone from its carrier packages failed."""


class DataError(AdapterHubError):
    """A dataset is missing, malformed or unusable for the task."""


class RecipeError(AdapterHubError):
    """A recipe has an unknown key or an invalid value."""


class TrainingError(AdapterHubError):
    """Training cannot start or cannot continue."""


class RegistryError(AdapterHubError):
    """A registry operation failed (store, index, manifest)."""


class NotFoundError(RegistryError):
    """An adapter id, version or remote does not exist."""

    exit_code = 3


class ConflictError(RegistryError):
    """A version already exists, or two publishers raced for it."""

    exit_code = 4


class YankedError(RegistryError):
    """An exact id names a version its publisher withdrew; it is never served or preloaded."""

    exit_code = 6


class IntegrityError(RegistryError):
    """A file's checksum, shape, dtype or values are wrong, or a file is hostile."""

    exit_code = 5


class UntrustedError(IntegrityError):
    """An entry is unsigned, or signed by a key no policy trusts, where a signature is required."""


class BackboneMismatchError(IntegrityError):
    """An adapter was trained on a different backbone than the one loading it."""


class AuthError(RegistryError):
    """A remote refused our credentials or asked for some."""


class ServingError(AdapterHubError):
    """The runtime or server cannot do what was asked."""


class OverloadError(ServingError):
    """The serving queue is full; the caller should retry later."""
