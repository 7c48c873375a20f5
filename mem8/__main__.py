"""`python -m mem8` is the `mem8` command."""

from __future__ import annotations

import sys

from mem8.cli import main

sys.exit(main())
