"""Errors the command line reports in one line."""

from __future__ import annotations


class CommandError(Exception):
    """A command that could not do its work (not a usage error): `drift` prints the message in
    one line and exits with `exit_status`."""

    exit_status = 1
