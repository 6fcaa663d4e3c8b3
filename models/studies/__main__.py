"""`python -m models.studies optimizers|depth-width ...`: `sysdl study` without the console script."""

import sys

from models.shared.command import run_module

sys.exit(run_module("models.studies"))
