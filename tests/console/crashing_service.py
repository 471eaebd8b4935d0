"""A backend process that dies as soon as it starts, to exercise the
supervisor's restart budget."""

import sys

if __name__ == "__main__":
    sys.exit(3)
