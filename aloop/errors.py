"""The error hierarchy that decides what a failure means to the user.

Every layer raises a subclass of one of these two, so the CLI maps exceptions to exit
codes in one place: a :class:`UserError` is something the user can fix by changing what
they gave (exit 2); an :class:`InfrastructureError` is something outside the campaign
that failed (database, disk, a worker; exit 1), after which a rerun may help.
"""

from __future__ import annotations


class AloopError(Exception):
    """Base of aloop's own errors. Raised as such: the command ran and failed (exit 1)
    for a reason the message states, such as a campaign with too few labels to train."""


class UserError(AloopError, ValueError):
    """The input (campaign file, command line, data given) is wrong: fixing it helps,
    rerunning the same command does not."""


class InfrastructureError(AloopError, RuntimeError):
    """Something the campaign relies on failed; the data stored so far is intact and a
    rerun resumes."""
