import sys

from vidseg.cli import main

sys.exit(main())
