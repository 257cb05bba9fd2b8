"""Shared by the command-line tools: bad input ends the program with one line and exit code 2."""
import os
import sys

from absl import flags

USAGE_EXIT_CODE = 2


def fail(message, argv=None):
    """Print ``<program>: error: <message>`` to stderr and exit with code 2 (no traceback)."""
    program = os.path.basename((argv or sys.argv or ["tfvgg"])[0]) or "tfvgg"
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "invalid input"
    print(f"{program}: error: {first_line}", file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)


def parse_flags_or_exit(argv):
    """absl's flag parser for ``app.run(..., flags_parser=...)``, with ``fail`` for bad flags."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(e, argv)
