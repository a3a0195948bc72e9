"""`python -m real3d …`: the same entry point as the `real3d` command (the web app starts its runs this way)."""

from .cli import main

raise SystemExit(main())
