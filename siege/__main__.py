"""`python3 -m siege <scenario>`: the same as `siege/run <scenario>`."""

import sys

from siege.runner import main

sys.exit(main())
