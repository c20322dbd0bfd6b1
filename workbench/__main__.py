import sys

from workbench.cli import main

if __name__ == "__main__":  # worker processes (probes measured in parallel) import this module too
    sys.exit(main())
