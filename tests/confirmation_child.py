"""Appends to a balance confirmation campaign's evidence, or runs the mail
queue, in a separate process with its own database connection, for the
tests of the evidence under real concurrency
(tests/test_confirmation_processes.py).

usage: python confirmation_child.py CONFIG_JSON MODE
  MODE "hold CAMPAIGN REQUEST MARKER": append one entry without committing,
        write this connection's backend pid to MARKER, wait until the test
        creates MARKER.go (at most 300 s), then commit
  MODE "queue MAIL...": run the mail queue on these emails (auto-commit, as the
        cron does)
  MODE "append CAMPAIGN COUNT": append COUNT entries, each committed, each
        tried again after a serialization error as Odoo does; prints the
        number of tries of each
  MODE "outcomes LOCK_TIMEOUT": run the outcomes' job (it commits per
        campaign), waiting LOCK_TIMEOUT for a busy head; prints its result
"""

import importlib
import json
import os
import sys
import time

from child_common import child_registry

from odoo import SUPERUSER_ID, api
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY

EVENT = "account.confirmation.event"
CAMPAIGN = "account.confirmation.campaign"
OUTCOME = "account.confirmation.outcome"
OUTCOME_MODULE = (
    "odoo.addons.account_document_email.models.account_confirmation_outcome"
)


def hold(env, campaign_id, request_id, marker):
    env[EVENT]._append(
        env[CAMPAIGN].browse(campaign_id),
        "opened",
        env["account.confirmation.request"].browse(request_id),
        {"by": "holder"},
    )
    with open(f"{marker}.tmp", "w") as file:
        file.write(str(env.cr._cnx.get_backend_pid()))
    os.rename(f"{marker}.tmp", marker)
    deadline = time.time() + 300
    while not os.path.exists(f"{marker}.go") and time.time() < deadline:
        time.sleep(0.05)


def append(env, campaign_id, count):
    tries = []
    campaign = env[CAMPAIGN].browse(campaign_id)
    for n in range(count):
        for attempt in range(1, 21):
            try:
                env[EVENT]._append(campaign, "opened", None, {"n": n})
                env.cr.commit()
                tries.append(attempt)
                break
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                env.cr.rollback()
                env.invalidate_all()
    return tries


def main():
    _config, mode, args, registry = child_registry()
    # the cursor commits when the block ends, as a cron job does
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if mode == "hold":
            hold(env, int(args[0]), int(args[1]), args[2])
        elif mode == "queue":
            env["mail.mail"].process_email_queue(ids=[int(arg) for arg in args])
        elif mode == "outcomes":
            outcomes_job = importlib.import_module(OUTCOME_MODULE)
            outcomes_job.LOCK_TIMEOUT = args[0]
            sys.stdout.write(json.dumps(env[OUTCOME]._cron_append_pending()))
        elif mode == "append":
            sys.stdout.write(json.dumps(append(env, int(args[0]), int(args[1]))))


if __name__ == "__main__":
    main()
