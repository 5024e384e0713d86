#!/usr/bin/env bash
# Run the end-to-end demo (`python cli.py demo ...`) in the project environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh
exec python cli.py demo "$@"
