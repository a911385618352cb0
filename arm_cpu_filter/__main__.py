"""``python -m arm_cpu_filter`` = the ``arm-cpu-filter`` command."""

import sys

from arm_cpu_filter.cli import main

sys.exit(main())
