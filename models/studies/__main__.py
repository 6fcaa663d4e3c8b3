"""`python -m models.studies optimizers|depth-width ...`: `sysdl study` without the console script."""

import sys

from models.cli import run_module

sys.exit(run_module("models.studies"))
