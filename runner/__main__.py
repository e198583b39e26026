from __future__ import annotations

import sys

from runner.entry import main

sys.exit(main())
