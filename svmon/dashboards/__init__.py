"""Dashboards: queries (``queries``) and small helpers the notebooks share (``kit``)."""
