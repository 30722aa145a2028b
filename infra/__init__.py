"""Infrastructure: the embedded broker and the processes ``svmon up`` supervises.

Production deployment files (compose, runbook) will live beside this package.
"""
