"""`python -m p4gen` is the same as the `p4gen` command."""

import sys

from p4gen.cli import main

sys.exit(main())
