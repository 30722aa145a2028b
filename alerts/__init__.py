"""Alerts: what a derived fact means for the people responsible.

``lifecycle`` turns derived facts into alert changes (open one, resolve one); the
repository applies them to the in-app inbox table in the same transaction as the
totals, so an alert never disagrees with the figures beside it.
"""
