"""`python -m simulator` is the `simulator` command."""

from .cli import run_and_exit

run_and_exit()
