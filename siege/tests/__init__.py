"""The siege package's tests: what runs without a fleet (`python3 -m unittest discover -s
siege/tests -t .`, from the repository's root; scripts/test.sh runs them)."""
