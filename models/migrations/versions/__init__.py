"""The revisions, one file each, named ``NNNN_slug.py`` after their revision id."""
