#!/usr/bin/env bash
# Screenshots of the running demo (start it with `make run` first), then the
# first page of the PDF in the newest email of the outbox.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ADE_HOME=${ADE_HOME:-/opt/ade}
BASE=${BASE:-http://localhost:8069}
OUT=$here/static/description
shots=$ADE_HOME/shots
if [ ! -d "$shots/node_modules/playwright-core" ]; then
    mkdir -p "$shots" && (cd "$shots" && npm install --silent --no-audit --no-fund playwright-core@1)
fi
NODE_PATH=$shots/node_modules node --input-type=module -e "$(cat "$here/scripts/screenshots.mjs")" "$BASE" "$OUT" \
    || { cp "$here/scripts/screenshots.mjs" "$shots/" && node "$shots/screenshots.mjs" "$BASE" "$OUT"; }
eml=$(ls -t "$here"/outbox/*.eml | head -1)
"$ADE_HOME/venv/bin/python" - "$eml" "$OUT/email_pdf" <<'PY'
import email, email.policy, subprocess, sys, tempfile
message = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
pdf = next(p for p in message.walk() if p.get_content_type() == "application/pdf")
with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
    f.write(pdf.get_payload(decode=True)); f.flush()
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", f.name, sys.argv[2]], check=True)
print(f"{sys.argv[1]}: {message['Subject']} -> {sys.argv[2]}.png")
PY
ls -l "$OUT"/*.png
