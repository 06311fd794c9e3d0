"""The error hierarchy.

Every error the library raises on bad input derives from :class:`DeepCompressError`.
Each class carries the process exit code the CLI uses for it; the CLI prints the
message on one line to stderr, never a traceback.
"""

from __future__ import annotations


class DeepCompressError(Exception):
    """Base of every deepcompress error. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class ConfigError(DeepCompressError):
    """A bad option or config value: sparsity, bits, granularity, recipe, JSON kwargs."""

    exit_code = 2


class InputFileError(DeepCompressError):
    """An input path that is missing, a directory, empty, unreadable or of the wrong type."""

    exit_code = 2


class OutputError(DeepCompressError):
    """An output that cannot be written: unwritable folder, full disk."""

    exit_code = 2


class DataError(DeepCompressError):
    """A dataset spec that points nowhere or at files that do not verify."""

    exit_code = 2


class ModelError(DeepCompressError):
    """An unknown architecture, kwargs that do not fit the weights, or a refused pickle."""

    exit_code = 2


class ContainerError(DeepCompressError):
    """A ``.dcz`` file that is corrupt, truncated, hostile or otherwise invalid."""

    exit_code = 3


class ChecksumError(ContainerError):
    """A section or whole-file checksum does not match."""


class UnsupportedVersionError(ContainerError):
    """The file needs a format version or feature this release does not know."""


class CodecError(ContainerError):
    """An encoded stream that cannot be decoded (or a value that cannot be encoded)."""


class PipelineError(DeepCompressError):
    """A stage graph that is invalid (wrong order, missing inputs) or a failed stage."""

    exit_code = 4


__all__ = [
    "DeepCompressError",
    "ConfigError",
    "InputFileError",
    "OutputError",
    "DataError",
    "ModelError",
    "ContainerError",
    "ChecksumError",
    "UnsupportedVersionError",
    "CodecError",
    "PipelineError",
]
