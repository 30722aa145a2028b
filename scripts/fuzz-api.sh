#!/bin/sh
# The long API fuzz run: schemathesis against the served OpenAPI document with random
# generation (a new seed each run) and every check on, at least 2,000 requests per role
# (18 operations x 2 modes x EXAMPLES cases, for a supplier and a manager). CI runs the
# same test on a fixed seed with fewer cases. Usage: scripts/fuzz-api.sh [EXAMPLES]
set -eu
cd "$(dirname "$0")/.."
SVMON_FUZZ_RANDOM=1 SVMON_FUZZ_EXAMPLES="${1:-70}" exec .venv/bin/python -m pytest -q -s \
    -p no:cacheprovider tests/integration/test_api_fuzz.py -k agree
