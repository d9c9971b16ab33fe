import sys

from localswap.cli import main

sys.exit(main())
