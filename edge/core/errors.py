"""Exceptions raised by edge's library API.

Every error a user can cause is an ``EdgeError`` subclass carrying a one-line message and its exit code
(``exit_code``, what the CLI exits with after printing the message on one line); library users catch
them by type. An error raised in a measuring process crosses back by class name (``error_class``) and is
raised again as the same class.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every user-facing error: ``str(err)`` is a complete one-line message."""

    exit_code = 1


class UnknownNameError(EdgeError, KeyError):
    """A name (format, device, dataset, ...) that is not registered."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(EdgeError):
    """The Hugging Face checkpoint folder is missing, incomplete or corrupt."""

    exit_code = 3


class UnsupportedArchitectureError(CheckpointError):
    """config.json names an architecture that this converter does not handle."""


class ArtifactError(EdgeError):
    """An artifact file is missing, not of the expected kind, or corrupt."""

    exit_code = 4


class ConversionError(EdgeError):
    """A conversion or quantization step failed."""

    exit_code = 8


class VerificationError(ConversionError):
    """A converted artifact does not reproduce its source model."""

    exit_code = 7


class OutputError(EdgeError):
    """The output location cannot be written (permissions, disk full)."""

    exit_code = 6


class DatasetError(EdgeError):
    """The evaluation text is missing or too short for the protocol."""

    exit_code = 5


class DeviceError(EdgeError):
    """A device cannot be reached or cannot run the requested work."""

    exit_code = 9


class BenchError(EdgeError):
    """A benchmark run failed on the device."""

    exit_code = 10


class StoreError(EdgeError):
    """The results store cannot be opened or is from a newer edge."""

    exit_code = 11


def error_class(name: str) -> type[EdgeError]:
    """The ``EdgeError`` subclass called ``name`` (an error reported by another process); ``BenchError`` when
    there is none of that name."""
    todo: list[type[EdgeError]] = [EdgeError]
    while todo:
        cls = todo.pop()
        if cls.__name__ == name:
            return cls
        todo += cls.__subclasses__()
    return BenchError
