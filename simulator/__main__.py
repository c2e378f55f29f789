"""`python -m simulator` is the `simulator` command."""

import sys

from .cli import main

sys.exit(main())
