"""``python -m deepcompress.cli``: the same as the ``deepcompress`` command."""

from .main import main

main()
