#!/usr/bin/env bash
# Run every test of the add-on on a database of its own (created and dropped
# here), browser tours included. Prints "N passed, N failed" at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ODOO_SRC=${ODOO_SRC:-/opt/odoo18}
ADE_HOME=${ADE_HOME:-/opt/ade}
VENV=$ADE_HOME/venv
# the folder where this checkout appears as account_document_email
ADE_ADDONS=${ADE_ADDONS:-$ADE_HOME/addons}
DB=${TEST_DB:-ade_test_$(date +%s)_$$}
TAGS=${TEST_TAGS:-/account_document_email}
LOG=${TEST_LOG:-$here/var/test.log}
mkdir -p "$(dirname "$LOG")"

command -v chromium >/dev/null || { echo "chromium is missing: run make setup" >&2; exit 1; }
"$VENV/bin/python" -c "import websocket" || { echo "websocket-client is missing: run make setup" >&2; exit 1; }

export PATH="$VENV/bin:$PATH"
dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB" || { echo "cannot create database $DB" >&2; exit 1; }
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1; rm -rf "$ADE_HOME/data/filestore/$DB"' EXIT

echo "[test] database $DB, log $LOG"
"$VENV/bin/python" "$ODOO_SRC/odoo-bin" \
    --addons-path="$ODOO_SRC/addons,$ADE_ADDONS" \
    --data-dir="$ADE_HOME/data" \
    -d "$DB" -i account_document_email,account_edi_ubl_cii,account_payment \
    --test-enable --test-tags "$TAGS" \
    --http-port="${TEST_HTTP_PORT:-8169}" --http-interface=127.0.0.1 \
    --stop-after-init --log-level=test --max-cron-threads=0 \
    ${PGHOST:+--db_host="$PGHOST"} ${PGPORT:+--db_port="$PGPORT"} \
    >"$LOG" 2>&1
rc=$?

grep -E " (ERROR|CRITICAL) " "$LOG" | head -60
# the browser must really run: a skipped tour is a failure here
if grep -qE "Chrome( executable)? not found|skip.*(websocket|Chrome|browser)" "$LOG"; then
    echo "[test] browser tests were skipped: Chromium or websocket-client is not usable" >&2
    rc=1
fi
summary=$(grep -oE "[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests" "$LOG" | tail -1)
if [ -z "$summary" ]; then
    echo "[test] no test summary in the log (see $LOG)" >&2
    tail -30 "$LOG"
    echo "0 passed, 1 failed"
    exit 1
fi
failed=$(sed -E 's/^([0-9]+) failed.*/\1/' <<<"$summary")
errors=$(sed -E 's/.*failed, ([0-9]+) error.*/\1/' <<<"$summary")
total=$(sed -E 's/.* of ([0-9]+) tests/\1/' <<<"$summary")
bad=$((failed + errors))
echo "[test] $summary"
echo "$((total - bad)) passed, $bad failed"
[ "$total" -gt 0 ] || { echo "[test] no test ran" >&2; exit 1; }
[ "$bad" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
