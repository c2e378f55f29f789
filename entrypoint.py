"""Container entry point of the GitHub Action: everything happens in `simulator.github.action`."""

import sys

from simulator.github.action import run_action

if __name__ == "__main__":
    sys.exit(run_action())
