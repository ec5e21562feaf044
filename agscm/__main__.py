"""`python -m agscm`: the same command line as the `agscm` script."""

from agscm.cli import main

main()
