"""Errors a user can fix by changing their input; the CLI prints them in one line, exit 2."""


class UserError(Exception):
    """Bad input (a name, a path, a config key, a checkpoint) with a message saying what to do."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset is not where we looked; the message says where that was and how to get it."""


class CheckpointError(UserError):
    """A checkpoint is missing, or its hash or manifest does not match what was asked for."""
