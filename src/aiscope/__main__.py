"""``python -m aiscope``: the same command line as the ``aiscope`` script."""

from aiscope.cli import main

main()
