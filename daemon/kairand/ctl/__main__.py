"""`python -m kairand.ctl` runs kairanctl."""

import sys

from kairand.ctl import main

sys.exit(main())
