#!/usr/bin/env bash
# Run what CI runs on a fresh clone of the current branch, in a temporary folder, so a green
# result cannot depend on something installed by hand here.
#   scripts/check_fresh_clone.sh [make arguments]   (default: test)
#   scripts/check_fresh_clone.sh demo DEMO_ARGS=--json
set -euo pipefail
if [ $# -eq 0 ]; then set -- test; fi
src="$(git rev-parse --show-toplevel)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
git clone -q "$src" "$dir/ct-llm"
cd "$dir/ct-llm"
echo "fresh clone at $dir/ct-llm; running make $*"
time make "$@"
