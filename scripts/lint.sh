#!/usr/bin/env bash
# The same lint as the pre-commit hooks (all declared `repo: local`): installs
# ruff, pylint-odoo and pre-commit from PyPI and prettier with its XML plugin
# from npm, then runs every hook on every file.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ADE_HOME=${ADE_HOME:-/opt/ade}
LINT=$ADE_HOME/lint
stamp=$(cat "$here/scripts/requirements-lint.txt" "$here/package.json" | sha1sum | cut -c1-12)
if [ "$(cat "$LINT/.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "[lint] installing the linters in $LINT"
    rm -rf "$LINT" && mkdir -p "$LINT"
    python3 -m venv "$LINT/venv"
    "$LINT/venv/bin/pip" install -q --disable-pip-version-check -r "$here/scripts/requirements-lint.txt"
    cp "$here/package.json" "$LINT/"
    (cd "$LINT" && npm install --no-audit --no-fund --silent >/dev/null)
    echo "$stamp" > "$LINT/.stamp"
fi
export PATH="$LINT/venv/bin:$LINT/node_modules/.bin:$PATH"
export PRETTIER_PLUGIN_XML="$LINT/node_modules/@prettier/plugin-xml/src/plugin.js"
export PRE_COMMIT_HOME="$LINT/pre-commit-cache"
cd "$here"
pre-commit run --all-files --show-diff-on-failure
python3 "$here/scripts/gen_readme_rst.py" --check
