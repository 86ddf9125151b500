"""`python -m service` is the same as the `onecode` command."""

from service.cli import main

main()
