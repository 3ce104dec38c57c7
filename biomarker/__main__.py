"""`python -m biomarker` is the same as the `biomarker` command."""

from biomarker.cli import main

main()
