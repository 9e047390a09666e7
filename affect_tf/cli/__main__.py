"""``python -m affect_tf.cli``."""

import sys

from affect_tf.cli import main

sys.exit(main())
