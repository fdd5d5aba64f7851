"""``python -m bench``: what ``make bench`` runs once the models and sample media exist."""

import argparse
import sys

from bench import options, run
from vidseg.errors import VidsegError

parser = argparse.ArgumentParser(prog="python -m bench", description=run.__doc__.splitlines()[0])
options.add_arguments(parser)
try:
    sys.exit(run.run(parser.parse_args()))
except VidsegError as e:
    print(f"bench: error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
