import sys

from trainable.cli import main

sys.exit(main())
