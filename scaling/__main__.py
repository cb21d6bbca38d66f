import sys

from scaling.app.cli import main

sys.exit(main())
