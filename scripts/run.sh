#!/usr/bin/env bash
# The embedded demo: a database with demo data and the add-on installed, a
# local SMTP outbox that stores every email as an .eml file under ./outbox/,
# and Odoo on http://localhost:8069 (login admin / admin).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ODOO_SRC=${ODOO_SRC:-/opt/odoo18}
ADE_HOME=${ADE_HOME:-/opt/ade}
VENV=$ADE_HOME/venv
# the folder where this checkout appears as account_document_email
ADE_ADDONS=${ADE_ADDONS:-$ADE_HOME/addons}
DB=${DEMO_DB:-ade_demo}
PORT=${HTTP_PORT:-8069}
OUTBOX=${OUTBOX:-$here/outbox}
export PATH="$VENV/bin:$PATH"
odoo=("$VENV/bin/python" "$ODOO_SRC/odoo-bin" --addons-path="$ODOO_SRC/addons,$ADE_ADDONS"
      --data-dir="$ADE_HOME/data" -d "$DB" --db-filter="^$DB\$"
      ${PGHOST:+--db_host="$PGHOST"} ${PGPORT:+--db_port="$PGPORT"})

if ! psql -lqt | cut -d'|' -f1 | grep -qw "$DB"; then
    echo "[run] creating the demo database $DB (demo data + the add-on)"
    createdb "$DB"
    "${odoo[@]}" -i account_document_email --stop-after-init --log-level=warn
else
    "${odoo[@]}" -u account_document_email --stop-after-init --log-level=warn
fi

"$VENV/bin/python" "$here/scripts/outbox.py" "$OUTBOX" --port 2525 &
outbox_pid=$!
trap 'kill $outbox_pid 2>/dev/null' EXIT
echo "[run] emails land in $OUTBOX/*.eml"
echo "[run] Odoo on http://localhost:$PORT  -  login: admin  password: admin"
"${odoo[@]}" --http-port="$PORT" "$@"
