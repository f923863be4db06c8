"""``python -m seginv`` (and ``torchrun -m seginv``) runs the command line."""

from .cli import main

main()
