"""Distributed batch email: two Odoo servers on one database share a batch
through OCA's queue_job, the job runner dispatching through HAProxy.

Run by hand for its figures (``make test`` runs it once with ``--smoke``),
with the Odoo venv's Python and its wkhtmltopdf on the PATH, HAProxy
installed (``apt-get install haproxy``, done by ``scripts/setup.sh``) and
queue_job unzipped by ``scripts/setup.sh`` (``/opt/ade/oca/odoo/addons``)::

    export PATH=/opt/ade/venv/bin:$PATH
    python bench/distributed.py [--invoices 1000] [--addons /opt/ade/addons]
        [--oca /opt/ade/oca/odoo/addons] [--chunk-size N] [--keep]
        [--template DB] [--smoke]

What it does, on loopback addresses only, on a throwaway database (dropped at
the end unless ``--keep``):

1. installs the add-on and ``queue_job``, creates ``--invoices`` posted
   invoices (bench/batch_email.py's data) and switches the add-on's two
   scheduled batch jobs off, so that only queue_job jobs render chunks;
2. starts an aiosmtpd sink, two Odoo servers (threaded, each with
   ``server_wide_modules = base,web,queue_job``: both run a job runner, one
   holds the leader lock) and HAProxy in the foreground, listening on
   127.0.0.1 and sending each request round-robin to either server; the job
   runner's ``[queue_job]`` ``host``/``port`` point at HAProxy, with
   ``channels = root:2,root.document_email:2``;
3. sends the batch over XML-RPC through HAProxy as the list view's "Send by
   email" does, and waits until the sink has every email;
4. checks that each invoice was delivered exactly once (distinct Message-IDs
   and subjects, one per invoice) and that both servers rendered chunks
   (``queue.job.worker_pid`` of the chunk jobs against each server's pid);
5. stops everything it started.
"""

import argparse
import os
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


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=3, help="lines per invoice")
    parser.add_argument(
        "--addons", default=os.environ.get("ADE_ADDONS", "/opt/ade/addons")
    )
    parser.add_argument("--oca", default=f"{bench.ADE_HOME}/oca/odoo/addons")
    parser.add_argument("--db", default=f"ade_bench_dist_{int(time.time())}")
    parser.add_argument("--timeout", type=int, default=3600)
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
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="smallest run, for CI: 4 invoices in chunks of 1 (both servers "
        "get some), a 5-minute limit",
    )
    args = parser.parse_args()
    if args.smoke:
        args.invoices, args.chunk_size, args.timeout = 4, 1, 300
    # bench/batch_email.py's data: one set of invoices, no stored PDFs
    args.only_prefork = True
    return args


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
max_cron_threads = 1
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


def write_haproxy_conf(folder, port, servers):
    path = os.path.join(folder, "haproxy.cfg")
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
    """bench/batch_email.py's invoices and SMTP settings; the scheduled batch
    jobs off (queue_job's jobs render the chunks)."""
    registry = bench.open_registry(args, addons_path(args))
    with registry.cursor() as cr:
        env = bench.admin_env(cr)
        (invoices,) = bench.build_data(env, args, smtp_port, url)
        model = env["document.email.batch"]
        for xmlid in ("ir_cron_document_email_batch", "ir_cron_document_email_batch_2"):
            env.ref(f"account_document_email.{xmlid}").sudo().active = False
        assert "queue.job" in env, "queue_job is not installed"
        cr.commit()  # pylint: disable=invalid-commit
        return registry, invoices.ids, model._name


def send(args, url, invoice_ids):
    common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
    uid = common.authenticate(args.db, "admin", "admin", {})
    rpc = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)
    context = {"active_model": "account.move", "active_ids": invoice_ids}
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


def chunk_jobs_by_pid(registry):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        jobs = env["queue.job"].search(
            [("method_name", "=", "_job_process_chunk"), ("state", "=", "done")]
        )
        by_pid = {}
        for job in jobs:
            chunks, documents = by_pid.get(job.worker_pid, (0, 0))
            rendered = int(job.result or 0)
            by_pid[job.worker_pid] = (chunks + bool(rendered), documents + rendered)
        states = env["queue.job"].read_group([], ["state"], ["state"])
        return by_pid, {group["state"]: group["state_count"] for group in states}


def batch_summary(registry, batch_id):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        batch = env["document.email.batch"].browse(batch_id)
        return batch.state, batch.progress


def run(args, folder, sink, smtp_port):
    balancer_port = bench.free_port()
    url = f"http://127.0.0.1:{balancer_port}"
    registry, invoice_ids, _model = prepare_data(args, smtp_port, url)
    conf = write_odoo_conf(args, folder, balancer_port)
    processes = {}
    try:
        ports = []
        for name in ("a", "b"):
            port = bench.free_port()
            ports.append((name, port))
            processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    f"{bench.ODOO_SRC}/odoo-bin",
                    f"--config={conf}",
                    f"--http-port={port}",
                    f"--gevent-port={bench.free_port()}",
                    f"--logfile={folder}/odoo-{name}.log",
                ],
                stdout=subprocess.DEVNULL,
            )
            say(f"Odoo server {name} on 127.0.0.1:{port} (pid {processes[name].pid})")
        haproxy_conf = write_haproxy_conf(folder, balancer_port, ports)
        with open(f"{folder}/haproxy.log", "w") as haproxy_log:
            processes["haproxy"] = subprocess.Popen(
                ["haproxy", "-db", "-f", haproxy_conf],
                stdout=subprocess.DEVNULL,
                stderr=haproxy_log,
            )
        for _name, port in ports:
            wait_http(f"http://127.0.0.1:{port}", processes.values())
        wait_http(url, processes.values())
        say(f"HAProxy on {url} (pid {processes['haproxy'].pid}), round-robin to a, b")

        n = len(invoice_ids)
        say(f"sending {n} invoices over XML-RPC through HAProxy")
        batch_id, request = send(args, url, invoice_ids)
        say(f"request (wizard create + send): {request:.1f} s")
        start = time.perf_counter()
        deadline = time.monotonic() + args.timeout
        last = 0
        while sink.messages < n and time.monotonic() < deadline:
            for name in ("a", "b", "haproxy"):
                if processes[name].poll() is not None:
                    raise SystemExit(f"{name} stopped")
            if sink.messages >= last + 100:
                last = sink.messages
                say(f"  {last} delivered after {time.perf_counter() - start:.0f} s")
            time.sleep(1)
        elapsed = time.perf_counter() - start
        # a late duplicate would show within a few seconds
        time.sleep(bench.late_duplicate_wait(args))
        return report(args, registry, batch_id, sink, n, request, elapsed, processes)
    finally:
        for process in processes.values():
            bench.stop(process)
        say("servers and HAProxy stopped")


def report(args, registry, batch_id, sink, n, request, elapsed, processes):
    by_pid, job_states = chunk_jobs_by_pid(registry)
    state, progress = batch_summary(registry, batch_id)
    names = {processes[name].pid: name for name in ("a", "b")}
    ids = len(set(sink.message_ids))
    subjects = len({subject for subject, _pdfs in sink.pdfs})
    say("=" * 60)
    say(f"{n} invoices, 2 Odoo servers behind HAProxy; load: {bench.load()}")
    say(f"{'request (XML-RPC, through HAProxy)':40}: {request:6.1f} s")
    say(f"{'from the request until all delivered':40}: {elapsed:6.1f} s")
    say(f"{'messages delivered to the sink':40}: {sink.messages}")
    say(f"{'  with a PDF':40}: {sink.with_pdf}")
    say(f"{'  distinct Message-IDs':40}: {ids}")
    say(f"{'  distinct subjects (invoices)':40}: {subjects}")
    say(f"{'batch':40}: {state}, {progress}")
    say(f"{'queue jobs by state':40}: {job_states}")
    for pid, (chunks, documents) in sorted(by_pid.items()):
        server = names.get(pid, "?")
        say(
            f"{f'chunk jobs run by server {server} (pid {pid})':40}: "
            f"{chunks} chunks, {documents} documents"
        )
    ok = (
        sink.messages == n == ids == subjects == sink.with_pdf
        and all(names.get(pid) for pid in by_pid)
        and {names[pid] for pid, (c, _d) in by_pid.items() if c} == {"a", "b"}
        and sum(d for _c, d in by_pid.values()) == n
    )
    say(
        "each invoice delivered exactly once, both servers rendered chunks: "
        + ("YES" if ok else "NO")
    )
    return ok


def main():
    args = parse_args()
    bench.stop_on_sigterm()
    sys.path.insert(0, bench.ODOO_SRC)
    from aiosmtpd.controller import Controller

    import odoo

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
            odoo.sql_db.close_all()
            subprocess.run(["dropdb", "--if-exists", args.db], check=False)
            subprocess.run(
                ["rm", "-rf", f"{bench.ADE_HOME}/data/filestore/{args.db}"],
                check=False,
            )
            say(f"dropped {args.db}")
        say(f"configuration files and server logs in {folder}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
