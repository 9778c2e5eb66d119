#!/usr/bin/env bash
# Run every test of the add-on on a database of its own (created and dropped
# here), browser tours included; beside it, in the background: on a second
# database with OCA queue_job installed (scripts/setup.sh unzips it), the
# tests of batches run as jobs; on a third with l10n_es_edi_tbai (TicketBAI,
# Spain), the batches of invoices a localisation commits in; then each
# benchmark once at its smallest size (bench/*.py --smoke, no timing asserted; BENCH_SMOKE=0 skips
# them, BENCH_SMOKE=1 runs them with TEST_TAGS too, BENCH_SMOKE=only runs
# nothing else), each counted as one test. Prints "N passed, N failed, N
# skipped" at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ODOO_SRC=${ODOO_SRC:-/opt/odoo18}
ADE_HOME=${ADE_HOME:-/opt/ade}
VENV=$ADE_HOME/venv
# the folder where this checkout appears as account_document_email
ADE_ADDONS=${ADE_ADDONS:-$ADE_HOME/addons}
OCA_ADDONS=$ADE_HOME/oca/odoo/addons
DB=${TEST_DB:-ade_test_$(date +%s)_$$}
TAGS=${TEST_TAGS:-/account_document_email}
LOG=${TEST_LOG:-$here/var/test.log}
# the tests that need queue_job in the database (skipped without it)
QUEUE_JOB_TAGS=/account_document_email:TestBatchQueueJob
# the tests that need l10n_es_edi_tbai in the database (skipped without it)
TBAI_TAGS=/account_document_email:TestTicketBaiBatch
BENCH_SMOKE=${BENCH_SMOKE:-auto}
BENCHES=(batch_email distributed aged_receivables reminders)
HTTP_PORT=${TEST_HTTP_PORT:-8169}
mkdir -p "$(dirname "$LOG")"

command -v chromium >/dev/null || { echo "chromium is missing: run make setup" >&2; exit 1; }
"$VENV/bin/python" -c "import websocket" || { echo "websocket-client is missing: run make setup" >&2; exit 1; }
export PATH="$VENV/bin:$PATH"
trap 'for db in "$DB" "${DB}_qj" "${DB}_tbai" "${DB}_bench" "${BENCHES[@]/#/${DB}_bench_}"; do dropdb --if-exists "$db" >/dev/null 2>&1; rm -rf "$ADE_HOME/data/filestore/$db"; done' EXIT

passed=0
bad=0
skips=0
# run_tests DB ADDONS_PATH MODULES TAGS LOG [PORT]: adds to $passed and $bad
run_tests() {
    local db=$1 addons=$2 modules=$3 tags=$4 log=$5 port=${6:-$HTTP_PORT}
    dropdb --if-exists "$db" 2>/dev/null
    createdb "$db" || { echo "cannot create database $db" >&2; bad=$((bad + 1)); return; }
    echo "[test] database $db ($modules), log $log"
    "$VENV/bin/python" "$ODOO_SRC/odoo-bin" \
        --addons-path="$addons" \
        --data-dir="$ADE_HOME/data" \
        -d "$db" -i "$modules" \
        --test-enable --test-tags "$tags" \
        --http-port="$port" --http-interface=127.0.0.1 \
        --stop-after-init --log-level=test --max-cron-threads=0 \
        ${PGHOST:+--db_host="$PGHOST"} ${PGPORT:+--db_port="$PGPORT"} \
        >"$log" 2>&1
    local rc=$?
    grep -aE " (ERROR|CRITICAL) " "$log" | head -60
    # the browser must really run: a skipped tour is a failure here
    if grep -aqE "Chrome( executable)? not found|skip.*(websocket|Chrome|browser)" "$log"; then
        echo "[test] browser tests were skipped: Chromium or websocket-client is not usable" >&2
        rc=1
    fi
    local summary
    summary=$(grep -aoE "[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests" "$log" | tail -1)
    if [ -z "$summary" ]; then
        echo "[test] no test summary in $log" >&2
        tail -30 "$log"
        bad=$((bad + 1))
        return
    fi
    local failed errors total
    failed=$(sed -E 's/^([0-9]+) failed.*/\1/' <<<"$summary")
    errors=$(sed -E 's/.*failed, ([0-9]+) error.*/\1/' <<<"$summary")
    total=$(sed -E 's/.* of ([0-9]+) tests/\1/' <<<"$summary")
    # a skipped test is not a passed one; only the queue_job and TicketBAI
    # tests may skip (in the database without their module)
    local skipped allowed=": skipped (TestBatchQueueJob|TestTicketBaiBatch)\."
    skipped=$(grep -ac ": skipped " "$log")
    if grep -a ": skipped " "$log" | grep -qvE "$allowed"; then
        echo "[test] tests were skipped in $db:" >&2
        grep -a ": skipped " "$log" | grep -vE "$allowed" | head >&2
        rc=1
    fi
    echo "[test] $summary ($skipped skipped)"
    [ "$total" -gt 0 ] || { echo "[test] no test ran in $db" >&2; rc=1; }
    [ "$rc" -eq 0 ] || [ $((failed + errors)) -gt 0 ] || errors=1
    passed=$((passed + total - failed - errors - skipped))
    bad=$((bad + failed + errors))
    skips=$((skips + skipped))
}

# run_bench_smoke NAME [ARGS...]: bench/NAME.py --smoke on a copy of the
# template database (its own, dropped by the bench), one passed or failed
run_bench_smoke() {
    local name=$1
    shift
    local log=${LOG%.log}-bench-$name.log
    local start=$SECONDS
    if ADE_HOME="$ADE_HOME" ODOO_SRC="$ODOO_SRC" timeout -k 30 600 \
        "$VENV/bin/python" "$here/bench/$name.py" --smoke \
        --template "${DB}_bench" --db "${DB}_bench_$name" --addons "$ADE_ADDONS" \
        "$@" >"$log" 2>&1; then
        echo "[test] bench/$name.py --smoke: ok ($((SECONDS - start)) s, log $log)"
        passed=$((passed + 1))
    else
        echo "[test] bench/$name.py --smoke FAILED ($((SECONDS - start)) s, log $log):" >&2
        tail -30 "$log" >&2
        bad=$((bad + 1))
    fi
}

# each benchmark once at its smallest size, on copies of one database with
# the add-on installed (one install instead of one per benchmark)
bench_smoke() {
    local log=${LOG%.log}-bench-install.log
    echo "[test] benchmarks at their smallest size (database ${DB}_bench), log $log"
    if ! createdb "${DB}_bench" || ! "$VENV/bin/python" "$ODOO_SRC/odoo-bin" \
        --addons-path="$ODOO_SRC/addons,$ADE_ADDONS" --data-dir="$ADE_HOME/data" \
        -d "${DB}_bench" -i account_document_email --without-demo=all \
        --stop-after-init --log-level=warn --max-cron-threads=0 \
        ${PGHOST:+--db_host="$PGHOST"} ${PGPORT:+--db_port="$PGPORT"} \
        >"$log" 2>&1; then
        echo "[test] cannot install the benchmarks' database" >&2
        tail -30 "$log" >&2
        bad=$((bad + ${#BENCHES[@]}))
        return
    fi
    for name in "${BENCHES[@]}"; do
        case $name in
            distributed) run_bench_smoke "$name" --oca "$OCA_ADDONS" ;;
            *) run_bench_smoke "$name" ;;
        esac
    done
}

full_run() { [ "$TAGS" = /account_document_email ]; }
# named_in_tags CLASS: TEST_TAGS names that class (and does not exclude it)
named_in_tags() { [[ ",$TAGS" == *"$1"* && ",$TAGS" != *,-*"$1"* ]]; }

# batches as queue_job jobs: on the full run, or when TEST_TAGS names them
queue_job_tests() {
    if [ ! -f "$OCA_ADDONS/queue_job/__manifest__.py" ]; then
        echo "[test] OCA queue_job is missing from $OCA_ADDONS: run make setup" >&2
        bad=$((bad + 1))
        return
    fi
    local qj_log=${LOG%.log}-queue_job.log
    run_tests "${DB}_qj" "$ODOO_SRC/addons,$ADE_ADDONS,$OCA_ADDONS" \
        account_document_email,queue_job "$QUEUE_JOB_TAGS" "$qj_log" $((HTTP_PORT + 100))
    # there, queue_job is installed: a skip would hide the test
    if grep -aq ": skipped " "$qj_log"; then
        echo "[test] tests were skipped with queue_job installed" >&2
        bad=$((bad + 1))
    fi
}

# invoices TicketBAI submits (and commits) in a batch
tbai_tests() {
    local tbai_log=${LOG%.log}-tbai.log
    run_tests "${DB}_tbai" "$ODOO_SRC/addons,$ADE_ADDONS" \
        account_document_email,l10n_es_edi_tbai "$TBAI_TAGS" "$tbai_log" $((HTTP_PORT + 200))
    # there, l10n_es_edi_tbai is installed: a skip would hide the test
    if grep -aq ": skipped " "$tbai_log"; then
        echo "[test] tests were skipped with l10n_es_edi_tbai installed" >&2
        bad=$((bad + 1))
    fi
}

# the runs beside the main database's: queue_job, TicketBAI, benchmarks
side_runs() {
    if [ "$BENCH_SMOKE" != only ]; then
        if full_run || named_in_tags TestBatchQueueJob; then queue_job_tests; fi
        if full_run || named_in_tags TestTicketBaiBatch; then tbai_tests; fi
    fi
    if [ "$BENCH_SMOKE" = only ] || [ "$BENCH_SMOKE" = 1 ] ||
        { [ "$BENCH_SMOKE" = auto ] && full_run; }; then
        bench_smoke
    fi
}

# The side runs go in the background while the main database's tests run
# (each its own database and HTTP port): make test's time is the longest one.
side_out=$(mktemp)
(
    side_runs
    echo "$passed $bad $skips" >"$side_out.counts"
) >"$side_out" 2>&1 &
side_pid=$!
if [ "$BENCH_SMOKE" != only ]; then
    run_tests "$DB" "$ODOO_SRC/addons,$ADE_ADDONS" \
        account_document_email,account_edi_ubl_cii,account_payment "$TAGS" "$LOG"
fi
wait "$side_pid"
cat "$side_out"
if read -r side_passed side_bad side_skips <"$side_out.counts"; then
    passed=$((passed + side_passed))
    bad=$((bad + side_bad))
    skips=$((skips + side_skips))
else
    echo "[test] the side runs (queue_job, TicketBAI, benchmarks) did not finish" >&2
    bad=$((bad + 1))
fi
rm -f "$side_out" "$side_out.counts"

echo "$passed passed, $bad failed, $skips skipped"
[ "$bad" -eq 0 ] || exit 1
