#!/usr/bin/env bash
# Run the test suite in the project environment (created/updated by scripts/env.sh).
# Default pytest options (testpaths, markers, -m 'not slow', timeout) come from
# pyproject.toml. Examples:
#   bash scripts/test.sh                      # fast tests
#   bash scripts/test.sh -m slow              # only the slow tests
#   bash scripts/test.sh tests/test_environment.py -q
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
exec python -m pytest "$@"
