import sys

from workbench.bench import main

sys.exit(main())
