"""Errors a user can fix by changing their input; the CLI prints them in one line, exit 2."""


class UserError(Exception):
    """Bad input (a name, a path, a config key, a checkpoint) with a message saying what to do."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset is not where we looked; the message says where that was and how to get it."""


class CheckpointError(UserError):
    """A checkpoint is missing, or its hash or manifest does not match what was asked for."""


class MethodError(UserError):
    """A method's map is malformed, or a user's method raised: the message names the method
    (and its plugin); a raised exception is chained as ``__cause__`` for a traceback."""


class MetricError(UserError):
    """A user's metric raised: the message names the metric and its plugin; the exception
    is chained as ``__cause__``."""
