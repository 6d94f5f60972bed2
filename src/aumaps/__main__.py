"""``python -m aumaps`` is the ``aumaps`` command."""

import sys

from .cli import main

sys.exit(main())
