#!/usr/bin/env bash
# The test command (README, .ci/run): sets up .venv, then runs every tier; extra args go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash deploy/local/setup.sh
. deploy/local/env.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
