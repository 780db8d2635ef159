"""``python -m visgen`` is the ``visgen`` command."""

import sys

from visgen.cli import main

sys.exit(main())
