"""Failure classes shared by kairand and kairanctl: one exit code each, one operator hint each."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes. Documented in docs/exit-codes.md; never renumber."""

    OK = 0
    FAILURE = 1  # a check failed (doctor, audit verify, backup verify)
    USAGE = 64  # wrong command line
    DATA = 65  # an input file is malformed or tampered with
    STORE = 74  # the database file cannot be opened, read or written
    KEY = 77  # a secret is missing or does not match the store
    CONFIG = 78  # the configuration file is missing or invalid
    SCHEMA = 79  # the database schema is newer than this program
    EXISTS = 80  # refusing to overwrite an existing store or setup
    RUNTIME = 70  # an unexpected internal error


class KairanError(Exception):
    """An error an operator can act on. `hint` says what to do; never holds personal data."""

    exit_code: ExitCode = ExitCode.RUNTIME

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(KairanError):
    exit_code = ExitCode.CONFIG


class SecretError(KairanError):
    """A secret is missing, malformed or does not open the store."""

    exit_code = ExitCode.KEY


class StoreError(KairanError):
    exit_code = ExitCode.STORE


class SchemaTooNewError(KairanError):
    exit_code = ExitCode.SCHEMA


class MigrationOrderError(KairanError):
    """The migration files are not one contiguous, ordered sequence, or the store lacks a
    migration that had to run before later ones: nothing is applied (same code as a newer
    schema, so systemd does not retry it in a loop)."""

    exit_code = ExitCode.SCHEMA


class AlreadyExistsError(KairanError):
    exit_code = ExitCode.EXISTS


class UsageError(KairanError):
    """The command line asks for something impossible (the hint shows a correct one)."""

    exit_code = ExitCode.USAGE


class DataError(KairanError):
    exit_code = ExitCode.DATA


class BlockingCallError(RuntimeError):
    """A blocking store call was made on the event loop thread (a programming error)."""
