"""The `drift` command line."""

import sys


def main(argv=None):
    print("drift: no commands yet", file=sys.stderr)
    return 2
