"""`python -m cnnlab ...`: the same as the `cnnlab` command."""
from .cli import main

raise SystemExit(main())
