"""Distributed batch email: two Odoo servers on one database share a batch
through OCA's queue_job, the job runner dispatching through HAProxy.

Run by hand for its figures (``make test`` runs it once with ``--smoke``),
with the Odoo venv's Python and its wkhtmltopdf on the PATH, HAProxy
installed (``apt-get install haproxy``, done by ``scripts/setup.sh``) and
queue_job unzipped by ``scripts/setup.sh`` (``/opt/ade/oca/odoo/addons``)::

    export PATH=/opt/ade/venv/bin:$PATH
    python bench/distributed.py [--invoices 1000] [--addons /opt/ade/addons]
        [--oca /opt/ade/oca/odoo/addons] [--chunk-size N] [--keep]
        [--single] [--baseline-invoices N | --baseline-rss MiB]
        [--check-pdfs] [--template DB] [--smoke]

What it does, on loopback addresses only, on a throwaway database (dropped at
the end unless ``--keep``):

1. installs the add-on and ``queue_job``, creates ``--invoices`` posted
   invoices (bench/batch_email.py's data; with ``--baseline-invoices`` and
   ``--single``, one more set of invoices each, for the same customers) and
   switches the add-on's two scheduled batch jobs off, so that only
   queue_job jobs render chunks; checks that the crons that deliver (core's
   mail queue, the add-on's delivery workers) are active;
2. starts an aiosmtpd sink, two Odoo servers (threaded, each with
   ``server_wide_modules = base,web,queue_job``: both run a job runner, one
   holds the leader lock, and ``max_cron_threads = 1``: the emails leave
   from the cron threads) and HAProxy in the foreground, listening on
   127.0.0.1 and sending each request round-robin to either server; the job
   runner's ``[queue_job]`` ``host``/``port`` point at HAProxy, with
   ``channels = root:2,root.document_email:2``;
3. sends the batch over XML-RPC through HAProxy as the list view's "Send by
   email" does, and waits until the sink has every email;
4. checks that each invoice was delivered exactly once (distinct Message-IDs
   and subjects, one per invoice) with its own PDF (each PDF shows exactly
   one invoice number, its subject's; with ``--check-pdfs`` every line and
   the total, read back with pdfminer), that both servers rendered chunks
   (``queue.job.worker_pid`` of the chunk jobs against each server's pid),
   that each email is in exactly one server's log (core's mail queue logs
   one line per email sent, with its Message-Id), that each server's peak
   RSS (``VmHWM``, sampled every 0.5 s) was sampled, and, from two delivery
   slices' worth of emails outside ``--smoke`` (which sets slices of 1 and
   only shows it), that both servers delivered; any of these failing fails
   the run. The targets (request < 2 s, peak RSS <= 1.3x the baseline) are
   printed, met or ABOVE TARGET (or "not evaluated"), not errors;
5. stops everything it started, and deletes its folder of configuration
   files and logs unless ``--keep`` or the run failed.

Each run (a "phase") starts new servers, so that its peak RSS is its own.
``--baseline-invoices N`` first runs the same on N other invoices (its peak
RSS is the baseline; ``--baseline-rss`` gives one measured before) and
prints the ratio of the main run's peak RSS to it (target <= 1.3x).
``--single`` then sends the same number of other invoices with ONE server
(HAProxy with one backend) and prints both times and their ratio.
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import batch_email as bench

CHANNELS = "root:2,root.document_email:2"
# per server: the emails leave from the cron threads (the mail queue's crons)
CRON_THREADS = 1
TARGET_REQUEST = 2.0
TARGET_RSS = 1.3
# core's mail queue, one line per email sent, in the sending server's log
SENT = re.compile(r"Mail with ID \d+ and Message-Id (['\"])(.*?)\1 successfully sent")
CRON_STARTED = re.compile(r"ir_cron: Job (['\"]).*?\1 \((\d+)\) starting")

# one run of the batch on new servers: its label, servers, invoices, files
Phase = collections.namedtuple("Phase", "label servers invoice_ids prefix")
# what a run measured: its verdict, its times (s) and a server's peak RSS (MiB)
Result = collections.namedtuple("Result", "ok request elapsed rss")
# what the phases share: the options, the folder, the sink, the database
Context = collections.namedtuple(
    "Context",
    "args folder sink registry conf balancer_port url delivery_crons slice_size",
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=3, help="lines per invoice")
    parser.add_argument(
        "--addons", default=os.environ.get("ADE_ADDONS", "/opt/ade/addons")
    )
    parser.add_argument("--oca", default=f"{bench.ADE_HOME}/oca/odoo/addons")
    parser.add_argument("--db", default=f"ade_bench_dist_{int(time.time())}")
    parser.add_argument("--timeout", type=int, default=3600, help="per run (s)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        help="documents per chunk job (account_document_email.batch_chunk_size; "
        "the add-on's default if unset): both servers render only from two chunks",
    )
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--template",
        help="create the database as a copy of this one (the add-on "
        "installed, without demo data) instead of installing from scratch",
    )
    add_comparison_args(parser)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="smallest run, for CI: 4 invoices in chunks of 1 (both servers "
        "get some), a 5-minute limit a run, a baseline run of 2 invoices, "
        "--single and --check-pdfs",
    )
    args = parser.parse_args()
    if args.baseline_invoices and args.baseline_rss:
        parser.error("--baseline-invoices or --baseline-rss, not both")
    if args.check_pdfs is None:
        args.check_pdfs = args.smoke
    if args.smoke:
        args.invoices, args.chunk_size, args.timeout = 4, 1, 300
        args.single = True
        args.baseline_invoices = None if args.baseline_rss else 2
    if (args.baseline_invoices or 0) > args.invoices:
        parser.error("--baseline-invoices: at most --invoices (the same customers)")
    # bench/batch_email.py's data: one set of invoices, no stored PDFs
    args.only_prefork = True
    return args


def add_comparison_args(parser):
    parser.add_argument(
        "--single",
        action="store_true",
        help="then send as many other invoices with ONE server (HAProxy with "
        "one backend) and print both times and their ratio",
    )
    parser.add_argument(
        "--baseline-invoices",
        type=int,
        metavar="N",
        help="first send N other invoices the same way (new servers): the "
        "peak RSS of the main run is compared with theirs (target <= 1.3x)",
    )
    parser.add_argument(
        "--baseline-rss",
        type=float,
        metavar="MiB",
        help="the baseline peak RSS of a server, measured before",
    )
    parser.add_argument(
        "--check-pdfs",
        action=argparse.BooleanOptionalAction,
        help="read every delivered PDF back (pdfminer): each invoice's lines "
        "and total must be in its own PDF (on by default with --smoke)",
    )


def say(text):
    bench.say(text)


def addons_path(args):
    return f"{bench.addons_path(args)},{args.oca}"


def install(args):
    bench.install(
        args, "account_document_email,queue_job", addons_path(args), timeout=1200
    )


def write_odoo_conf(args, folder, balancer_port):
    path = os.path.join(folder, "odoo.conf")
    with open(path, "w") as conf:
        conf.write(
            f"""[options]
addons_path = {addons_path(args)}
data_dir = {bench.ADE_HOME}/data
db_name = {args.db}
dbfilter = ^{args.db}$
http_interface = 127.0.0.1
max_cron_threads = {CRON_THREADS}
server_wide_modules = base,web,queue_job
log_level = info
log_handler = odoo.addons.base.models.ir_actions_report:ERROR

[queue_job]
channels = {CHANNELS}
scheme = http
host = 127.0.0.1
port = {balancer_port}
"""
        )
    return path


def write_haproxy_conf(path, port, servers):
    backends = "\n".join(
        f"    server {name} 127.0.0.1:{server_port} check"
        for name, server_port in servers
    )
    with open(path, "w") as conf:
        conf.write(
            f"""global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s

frontend odoo
    bind 127.0.0.1:{port}
    default_backend odoo_servers

backend odoo_servers
    balance roundrobin
{backends}
"""
        )
    return path


def wait_http(url, processes, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/web/health", timeout=5).close()
            return
        except (urllib.error.URLError, OSError):
            for process in processes:
                if process.poll() is not None:
                    raise SystemExit(f"{process.args[:3]} stopped") from None
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def prepare_data(args, smtp_port, url):
    """bench/batch_email.py's invoices and SMTP settings, one more set of
    invoices for each other run; the scheduled batch jobs off (queue_job's
    jobs render the chunks)."""
    registry = bench.open_registry(args, addons_path(args))
    with registry.cursor() as cr:
        env = bench.admin_env(cr)
        (invoices,) = bench.build_data(env, args, smtp_port, url)
        sets = {"two servers": invoices.ids}
        start = time.perf_counter()
        partners = invoices.partner_id
        if args.baseline_invoices:
            sets["baseline"] = bench.create_invoices(
                env, partners[: args.baseline_invoices], args.lines
            ).ids
        if args.single:
            sets["one server"] = bench.create_invoices(env, partners, args.lines).ids
        if len(sets) > 1:
            say(
                f"other sets {[len(ids) for ids in sets.values()][1:]} in "
                f"{time.perf_counter() - start:.0f} s"
            )
        build_report_assets(env)
        for xmlid in ("ir_cron_document_email_batch", "ir_cron_document_email_batch_2"):
            env.ref(f"account_document_email.{xmlid}").sudo().active = False
        assert "queue.job" in env, "queue_job is not installed"
        slice_size = delivery_slice_size(env, args)
        cr.commit()  # pylint: disable=invalid-commit
        return registry, sets, slice_size


def delivery_slice_size(env, args):
    """Emails a delivery worker claims at once; 1 with ``--smoke``, so that
    its few emails make several slices and both servers must deliver."""
    from odoo.addons.account_document_email.models import mail_mail

    params = env["ir.config_parameter"].sudo()
    if args.smoke:
        params.set_param(mail_mail.SLICE_PARAM, 1)
    size = int(params.get_param(mail_mail.SLICE_PARAM) or mail_mail.SLICE_SIZE)
    say(f"delivery slices of {size} emails ({mail_mail.SLICE_PARAM})")
    return size


def build_report_assets(env):
    """The PDFs' asset bundles, compiled once beforehand: else the first
    run's servers compile them (SCSS), which weighs on its peak RSS only."""
    for bundle in ("web.report_assets_common", "web.report_assets_pdf"):
        env["ir.qweb"]._get_asset_bundle(bundle, js=False).css()


def delivery_crons(registry):
    """The crons that deliver the emails (core's mail queue, the add-on's
    delivery workers), by id: all must be active, or nothing leaves."""
    from odoo import SUPERUSER_ID, api

    from odoo.addons.account_document_email.models import mail_mail_claim

    xmlids = ("mail.ir_cron_mail_scheduler_action", *mail_mail_claim.DELIVERY_CRONS)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        crons = [env.ref(xmlid) for xmlid in xmlids]
        names = {cron.id: cron.name for cron in crons}
        inactive = [cron.name for cron in crons if not cron.active]
    if inactive:
        raise SystemExit(f"delivery crons switched off: {inactive}")
    say(
        f"delivery crons active: {sorted(names.values())}; {CRON_THREADS} cron "
        f"thread(s) a server"
    )
    return names


def send(args, url, invoice_ids):
    """The list view's "Send by email" over XML-RPC, timed once both servers
    have answered a few calls (as servers in use)."""
    common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
    uid = common.authenticate(args.db, "admin", "admin", {})
    rpc = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)
    context = {"active_model": "account.move", "active_ids": invoice_ids}
    bench.warm_up(url, args.db, uid)
    start = time.perf_counter()
    wizard_id = rpc.execute_kw(
        args.db,
        uid,
        "admin",
        "document.email.wizard",
        "create",
        [{}],
        {"context": context},
    )
    action = rpc.execute_kw(
        args.db,
        uid,
        "admin",
        "document.email.wizard",
        "action_send",
        [[wizard_id]],
        {"context": context},
    )
    assert action["res_model"] == "document.email.batch", action
    return action["res_id"], time.perf_counter() - start


def database_now(registry):
    with registry.cursor() as cr:
        cr.execute("SELECT now() AT TIME ZONE 'UTC'")
        return cr.fetchone()[0]


def chunk_jobs_by_pid(registry, since):
    """The chunk jobs done since the run began, by the pid that ran them,
    and the run's jobs by state (a run's last jobs may be left pending)."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        jobs = env["queue.job"].search(
            [
                ("method_name", "=", "_job_process_chunk"),
                ("state", "=", "done"),
                ("date_done", ">=", since),
            ]
        )
        by_pid = {}
        for job in jobs:
            chunks, documents = by_pid.get(job.worker_pid, (0, 0))
            rendered = int(job.result or 0)
            by_pid[job.worker_pid] = (chunks + bool(rendered), documents + rendered)
        states = env["queue.job"].read_group(
            ["|", ("date_created", ">=", since), ("date_done", ">=", since)],
            ["state"],
            ["state"],
        )
        return by_pid, {group["state"]: group["state_count"] for group in states}


def batch_summary(registry, batch_id):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        batch = env["document.email.batch"].browse(batch_id)
        return batch.state, batch.progress


def log_path(ctx, phase, name):
    return f"{ctx.folder}/{phase.prefix}odoo-{name}.log"


def start_servers(ctx, phase, processes):
    """The run's own Odoo servers (new processes: each run's peak RSS is its
    own) and HAProxy in front of them, on the same port for every run (the
    job runners' and wkhtmltopdf's address)."""
    ports = []
    for name in phase.servers:
        port = bench.free_port()
        ports.append((name, port))
        processes[name] = subprocess.Popen(
            [
                sys.executable,
                f"{bench.ODOO_SRC}/odoo-bin",
                f"--config={ctx.conf}",
                f"--http-port={port}",
                f"--gevent-port={bench.free_port()}",
                f"--logfile={log_path(ctx, phase, name)}",
            ],
            stdout=subprocess.DEVNULL,
        )
        say(f"Odoo server {name} on 127.0.0.1:{port} (pid {processes[name].pid})")
    prefix = f"{ctx.folder}/{phase.prefix}haproxy"
    haproxy_conf = write_haproxy_conf(f"{prefix}.cfg", ctx.balancer_port, ports)
    with open(f"{prefix}.log", "w") as haproxy_log:
        processes["haproxy"] = subprocess.Popen(
            ["haproxy", "-db", "-f", haproxy_conf],
            stdout=subprocess.DEVNULL,
            stderr=haproxy_log,
        )
    for _name, port in ports:
        wait_http(f"http://127.0.0.1:{port}", processes.values())
    wait_http(ctx.url, processes.values())
    say(
        f"HAProxy on {ctx.url} (pid {processes['haproxy'].pid}), round-robin "
        f"to {', '.join(phase.servers)}"
    )


def wait_delivered(ctx, n, processes):
    """Seconds until the sink has ``n`` emails (or the time limit)."""
    start = time.perf_counter()
    deadline = time.monotonic() + ctx.args.timeout
    last = 0
    while ctx.sink.messages < n and time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} stopped")
        if ctx.sink.messages >= last + 100:
            last = ctx.sink.messages
            say(f"  {last} delivered after {time.perf_counter() - start:.0f} s")
        time.sleep(0.25)
    return time.perf_counter() - start


def run_phase(ctx, phase):
    """Send the phase's invoices through its own servers, wait for every
    email, print the figures and return them (a ``Result``)."""
    n = len(phase.invoice_ids)
    ctx.sink.reset()
    say(f"--- {phase.label}: {n} invoices, server(s) {', '.join(phase.servers)}")
    processes, memory = {}, None
    try:
        start_servers(ctx, phase, processes)
        pids = {processes[name].pid: name for name in phase.servers}
        memory = bench.WorkerMemory(*pids, threaded=True)
        memory.start()
        since = database_now(ctx.registry)
        say(f"sending {n} invoices over XML-RPC through HAProxy")
        batch_id, request = send(ctx.args, ctx.url, phase.invoice_ids)
        target(f"{phase.label}: request (XML-RPC)", request, TARGET_REQUEST, " s")
        elapsed = wait_delivered(ctx, n, processes)
        bench.figure(f"{phase.label}: from the request until all delivered", elapsed)
        # a late duplicate would show within a few seconds
        time.sleep(bench.late_duplicate_wait(ctx.args))
    finally:
        if memory:
            memory.running = False
        bench.stop(*processes.values())
        say("servers and HAProxy stopped")
    peaks = {name: memory.peaks.get(pid, 0) for pid, name in pids.items()}
    ok = report(ctx, phase, batch_id, since, pids)
    for name, peak in peaks.items():
        bench.figure(f"{phase.label}: peak RSS of server {name} (MiB)", peak, "")
    if not all(peaks.values()):
        say(f"{phase.label}: a server's peak RSS was never sampled: NOT OK")
    ok = ok and all(peaks.values())
    return Result(ok, request, elapsed, max(peaks.values()))


def report(ctx, phase, batch_id, since, pids):
    """The phase's counts and checks, printed; True if every invoice was
    delivered once with its own PDF and (two servers) both rendered."""
    sink, n = ctx.sink, len(phase.invoice_ids)
    ids = len(set(sink.message_ids))
    subjects = len({subject for subject, _pdfs in sink.pdfs})
    say("=" * 60)
    say(
        f"{phase.label}: {n} invoices, {len(pids)} Odoo server(s) behind HAProxy; "
        f"load: {bench.load()}"
    )
    show("messages delivered to the sink", sink.messages)
    show("  with a PDF", sink.with_pdf)
    show("  distinct Message-IDs", ids)
    show("  distinct subjects (invoices)", subjects)
    own_pdfs = check_pdfs(ctx, phase)
    show("batch", ", ".join(batch_summary(ctx.registry, batch_id)))
    rendered = report_jobs(ctx, since, pids, n)
    logged_once, every_server = report_delivery(ctx, phase, pids)
    ok = sink.messages == n == ids == subjects == sink.with_pdf and own_pdfs
    ok = ok and logged_once
    # the baseline is there for its memory: a small one may not reach both
    both = len(pids) > 1 and phase.label != "baseline"
    if phase.label != "baseline":
        ok = ok and rendered
    # a smoke run's 4 emails may all leave through whichever cron runs first:
    # shown there (report_delivery), gating from a real run's size on
    gates_delivery = both and n >= 2 * ctx.slice_size and not ctx.args.smoke
    if both and not gates_delivery:
        show(
            f"{phase.label}: both servers delivered, gating",
            f"not evaluated ({n} emails, --smoke or fewer than 2 slices "
            f"of {ctx.slice_size})",
        )
    ok = ok and (every_server or not gates_delivery)
    say(
        f"{phase.label}: each invoice delivered exactly once with its own PDF, "
        "each email in exactly one server's log"
        + (", both servers rendered chunks" if both else "")
        + (", both servers delivered" if gates_delivery else "")
        + (": YES" if ok else ": NO")
    )
    return ok


def show(label, value):
    say(f"{label:46}: {value}")


def target(label, value, limit, unit):
    """A figure against its target: printed, not an error (the README)."""
    state = "met" if value < limit else "ABOVE TARGET"
    say(f"{label:46}: {value:6.1f}{unit} (target < {limit}{unit}) {state}")


def check_pdfs(ctx, phase):
    """Each PDF shows the invoice of its subject; with ``--check-pdfs``,
    every line and the total (bench/batch_email.py's checks)."""
    wrong = ctx.sink.mismatched()
    show("  PDFs showing the invoice of their subject", len(ctx.sink.pdfs) - len(wrong))
    if wrong:
        say(f"  PDFs of other documents in {wrong[:5]}")
    if not ctx.args.check_pdfs:
        return not wrong
    with ctx.registry.cursor() as cr:
        invoices = bench.admin_env(cr)["account.move"].browse(phase.invoice_ids)
        try:
            bench.check_whole_pdfs(ctx.sink, phase.label, invoices)
        except SystemExit as error:  # reported here, in the verdict
            say(str(error))
            return False
    return not wrong


def report_jobs(ctx, since, pids, n):
    """The chunk jobs each server ran; True if all documents were rendered
    by the run's servers, each of them (two or more) some."""
    by_pid, job_states = chunk_jobs_by_pid(ctx.registry, since)
    show("queue jobs of this run by state", job_states)
    for pid, (chunks, documents) in sorted(by_pid.items()):
        show(
            f"chunk jobs run by server {pids.get(pid, '?')} (pid {pid})",
            f"{chunks} chunks, {documents} documents",
        )
    return (
        all(pid in pids for pid in by_pid)
        and {pids[pid] for pid, (chunks, _d) in by_pid.items() if chunks}
        == set(pids.values())
        and sum(documents for _c, documents in by_pid.values()) == n
    )


def report_delivery(ctx, phase, pids):
    """Which server delivered each email the sink received (core's mail
    queue logs its Message-Id once sent) and the cron jobs each server ran.
    Returns whether each email is in exactly one server's log (not so if the
    log's pattern no longer matches) and whether every server delivered."""
    senders = collections.defaultdict(list)
    for name in pids.values():
        sent, crons = read_log(log_path(ctx, phase, name))
        for message_id in sent:
            senders[message_id].append(name)
        delivery = {ctx.delivery_crons[i]: crons[i] for i in ctx.delivery_crons}
        show(
            f"cron jobs run by server {name}",
            f"{sum(crons.values())}, of which delivery {delivery}",
        )
    delivered = collections.Counter()
    for message_id in set(ctx.sink.message_ids):
        names = senders.get(message_id, [])
        delivered[names[0] if len(names) == 1 else f"{len(names)} servers"] += 1
    for name in pids.values():
        show(f"emails delivered by server {name} (its log)", delivered[name])
    for other in sorted(set(delivered) - set(pids.values())):
        show(f"emails logged as sent by {other}", delivered[other])
    once = bool(ctx.sink.message_ids) and not set(delivered) - set(pids.values())
    show("each email in exactly one server's log", "YES" if once else "NO")
    every = all(delivered[name] for name in pids.values())
    if len(pids) > 1:
        show(f"{phase.label}: both servers delivered", "YES" if every else "NO")
    return once, every


def read_log(path):
    """The Message-Ids a server's log says it sent, and its cron job runs
    by cron id."""
    sent, crons = [], collections.Counter()
    with open(path, errors="replace") as log:
        for line in log:
            found = SENT.search(line)
            if found:
                sent.append(found.group(2))
            found = CRON_STARTED.search(line)
            if found:
                crons[int(found.group(2))] += 1
    return sent, crons


def run(args, folder, sink, smtp_port):
    balancer_port = bench.free_port()
    url = f"http://127.0.0.1:{balancer_port}"
    registry, sets, slices = prepare_data(args, smtp_port, url)
    conf = write_odoo_conf(args, folder, balancer_port)
    crons = delivery_crons(registry)
    ctx = Context(args, folder, sink, registry, conf, balancer_port, url, crons, slices)
    results = {}
    for label, servers, prefix in (
        ("baseline", ("a", "b"), "baseline-"),
        ("two servers", ("a", "b"), ""),
        ("one server", ("s",), "single-"),
    ):
        if label in sets:
            results[label] = run_phase(ctx, Phase(label, servers, sets[label], prefix))
            # each ratio as soon as both sides are measured
            if label == "two servers":
                memory_ratio(args, results)
            elif label == "one server":
                time_ratio(results)
    summary(args, results)
    return all(result.ok for result in results.values())


def memory_ratio(args, results):
    """The target on peak RSS (printed, not an error), or why it is not
    evaluated."""
    label = f"peak RSS: this run / baseline (target <= {TARGET_RSS}x)"
    baseline = results["baseline"].rss if "baseline" in results else args.baseline_rss
    peak = results["two servers"].rss
    if not baseline:
        show(
            label, "not evaluated (no baseline: --baseline-invoices or --baseline-rss)"
        )
    elif not peak:
        show(label, "not evaluated (no peak RSS sampled)")
    else:
        bench.verdict(
            f"peak RSS: this run / baseline {baseline:.1f} MiB",
            peak / baseline,
            TARGET_RSS,
        )


def time_ratio(results):
    label = "until all delivered, two servers / one"
    if "one server" not in results:
        show(label, "not evaluated (no --single run)")
        return
    two, one = results["two servers"].elapsed, results["one server"].elapsed
    show(label, f"{two:.1f} s / {one:.1f} s = {two / one:.2f}x")


def summary(args, results):
    """The figures of every run again, together."""
    say("=" * 60)
    say(f"{args.invoices} invoices; load: {bench.load()}")
    for label, result in results.items():
        show(
            f"{label}",
            f"request {result.request:.1f} s, until all delivered "
            f"{result.elapsed:.1f} s, peak RSS {result.rss:.1f} MiB, "
            + ("OK" if result.ok else "NOT OK"),
        )
        target(f"{label}: request (XML-RPC)", result.request, TARGET_REQUEST, " s")
    if "two servers" in results:
        memory_ratio(args, results)
        time_ratio(results)


def main():
    args = parse_args()
    bench.stop_on_sigterm()
    sys.path.insert(0, bench.ODOO_SRC)
    from aiosmtpd.controller import Controller

    if not os.path.isdir(os.path.join(args.oca, "queue_job")):
        raise SystemExit(f"no queue_job in {args.oca}: run scripts/setup.sh")
    if not shutil.which("haproxy"):
        raise SystemExit("HAProxy is missing: apt-get install haproxy")
    say(f"load before: {bench.load()}")
    sink = bench.Sink()
    smtp_port = bench.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    say(f"SMTP sink on 127.0.0.1:{smtp_port}")
    folder = tempfile.mkdtemp(prefix="ade-dist-")
    ok = False
    try:
        install(args)
        ok = run(args, folder, sink, smtp_port)
    finally:
        controller.stop()
        if not args.keep:
            bench.drop_database(args)
        if args.keep or not ok:
            say(f"configuration files and server logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
