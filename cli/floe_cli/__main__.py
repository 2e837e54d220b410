"""``python -m floe_cli``: the same as the ``floe`` command."""

import sys

from floe_cli.main import main

sys.exit(main())
