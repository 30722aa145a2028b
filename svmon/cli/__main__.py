"""``python -m svmon.cli``: the same command as the ``svmon`` console script."""

from svmon.cli import main

main()
