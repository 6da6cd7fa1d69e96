"""``python -m tunify.cli``."""

import sys

from . import main

sys.exit(main())
