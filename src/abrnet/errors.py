"""Errors a user can fix. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input from the user: a missing dataset, a bad option, a corrupt checkpoint.

    The message is one line and says what to do.
    """


class TrainingDiverged(UserError):
    """The loss became NaN or inf; the last good checkpoint is kept."""
