"""The base of every error a user can cause and fix (a path, a flag, a file, the environment).

Commands end such an error with one line and exit status 2 (models/shared/command.py); rooms
below the command line raise their own subclasses (DataError, CheckpointError, ...).
"""


class UserError(Exception):
    """Something the user can fix: the message says what was wrong and what to do."""
