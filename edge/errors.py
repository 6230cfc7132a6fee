"""Exceptions raised by edge's library API.

Every error a user can cause is an ``EdgeError`` subclass carrying a one-line message. The CLI maps
them to one line on stderr (see ``edge.cli.ERROR_EXIT_CODES``); library users catch them by type.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every user-facing error: ``str(err)`` is a complete one-line message."""


class UnknownNameError(EdgeError, KeyError):
    """A name (format, device, dataset, ...) that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(EdgeError):
    """The Hugging Face checkpoint folder is missing, incomplete or corrupt."""


class UnsupportedArchitectureError(CheckpointError):
    """config.json names an architecture that this converter does not handle."""


class ArtifactError(EdgeError):
    """An artifact file is missing, not of the expected kind, or corrupt."""


class ConversionError(EdgeError):
    """A conversion or quantization step failed."""


class VerificationError(ConversionError):
    """A converted artifact does not reproduce its source model."""


class OutputError(EdgeError):
    """The output location cannot be written (permissions, disk full)."""


class DatasetError(EdgeError):
    """The evaluation text is missing or too short for the protocol."""


class DeviceError(EdgeError):
    """A device cannot be reached or cannot run the requested work."""


class BenchError(EdgeError):
    """A benchmark run failed on the device."""


class StoreError(EdgeError):
    """The results store cannot be opened or is from a newer edge."""
