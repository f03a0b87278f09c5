"""``python -m bench``: run the whole suite and print the report."""

from bench.runner import main

raise SystemExit(main())
