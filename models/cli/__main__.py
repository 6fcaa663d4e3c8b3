"""`python -m models.cli ...`: the `sysdl` command line without the console script."""

import sys

from models.cli.main import main

sys.exit(main())
