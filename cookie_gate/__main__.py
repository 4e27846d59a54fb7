import sys

from cookie_gate.cli import main

sys.exit(main())
