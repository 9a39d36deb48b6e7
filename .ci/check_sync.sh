#!/usr/bin/env bash
# Fail when nbdev-export / nbdev-clean / the README render would change a tracked file (or add a module file).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
snapshot() { { git diff HEAD --no-ext-diff -- . ; git status --porcelain -- cogniverse_ft nbs README.md; } | sha256sum; }
before=$(snapshot)
.venv/bin/nbdev-export
.venv/bin/nbdev-clean
.venv/bin/cogniverse-ft docs readme >/dev/null
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "ERROR: nbdev-export / nbdev-clean / README render changed files: notebooks and module are out of sync." >&2
  git status --porcelain -- cogniverse_ft nbs README.md >&2
  git --no-pager diff --stat HEAD >&2
  exit 1
fi
echo "sync-check: nbdev-export, nbdev-clean and the README render change nothing."
