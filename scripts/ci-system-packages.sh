#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's Chromium for the Playwright browser tests
# (driven through `executable_path`, so Playwright's own browser download is never needed).
set -euo pipefail
command -v chromium >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
