"""autoresearch-tabular: the machinery behind prepare.py, train.py and the `autoresearch` command."""
