"""``python -m yolocam_core.cli``."""

import sys

from yolocam_core.cli.main import main

sys.exit(main())
