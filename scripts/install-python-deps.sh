#!/usr/bin/env bash
# Installs what scripts/verify-statement.py (offline statement verification, run by the statements tests)
# needs: the `cryptography` package, pinned. Skips when it is already importable.
set -euo pipefail

if python3 -c "import cryptography" 2>/dev/null; then
  exit 0
fi
python3 -m pip install --quiet --user "cryptography==48.0.0" || python3 -m pip install --quiet --user --break-system-packages "cryptography==48.0.0"
