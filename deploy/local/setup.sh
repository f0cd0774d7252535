#!/usr/bin/env bash
# Create or refresh .venv from requirements.lock (idempotent: skipped when the lock has not changed).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3.11}"
lock_hash="$(sha256sum "$repo/requirements.lock" "$repo/pyproject.toml" | sha256sum | cut -c1-16)"

if [[ -f "$venv/.lock-hash" && "$(cat "$venv/.lock-hash")" == "$lock_hash" ]]; then
  exit 0
fi
echo "setup: installing Python dependencies into $venv (first run downloads torch: a few GB)" >&2
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
# The lock lists every transitive dependency, so --no-deps installs exactly it. It was compiled with
# click>=8.4.2 overriding faust-streaming's cap (see [tool.uv] in pyproject.toml).
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps -r "$repo/requirements.lock"
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --no-deps -e "$repo"
echo "$lock_hash" > "$venv/.lock-hash"
