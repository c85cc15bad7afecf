import sys

from kairand.main import main

sys.exit(main())
