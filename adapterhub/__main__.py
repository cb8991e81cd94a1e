import sys

from adapterhub.cli import main

sys.exit(main())
