"""A real Postfix as the company's SMTP server, for the tests: its own
configuration, queue and log in a temporary directory, listening on a free
port of 127.0.0.1; never the system's service. It accepts every recipient of
its domains, delivers the known mailboxes into a Dovecot's maildirs and
bounces the others later with a real DSN, as providers do. Debian's
``postfix`` (scripts/setup.sh); runs as root (it drops to ``postfix``)."""

import os
import re
import shutil
import subprocess
import tempfile

from .common import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
# the services the tests need, none chrooted (the queue is a temporary one)
SERVICES = [
    "pickup",
    "cleanup",
    "qmgr",
    "rewrite",
    "bounce",
    "defer",
    "trace",
    "verify",
    "flush",
    "proxymap",
    "proxywrite",
    "smtp",
    "relay",
    "showq",
    "error",
    "retry",
    "discard",
    "virtual",
    "anvil",
    "scache",
    "postlog",
]

MAIN_CF = """
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
myhostname = mx.{domain}
mydomain = {domain}
myorigin = {domain}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {mail_root}
virtual_mailbox_maps = texthash:{root}/mailboxes
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
# accept first, bounce later (as Microsoft 365 or Google do)
smtpd_reject_unlisted_recipient = no
"""


def postfix_available():
    return os.path.exists(POSTFIX) and os.getuid() == 0


class PostfixServer:
    """``with PostfixServer(dovecot, domains) as mta:`` Postfix on
    ``mta.port``; ``dovecot.user`` is its one mailbox."""

    def __init__(self, dovecot, domains):
        self.dovecot, self.domains = dovecot, domains
        self.port = free_port()
        self.root = None

    def _master_cf(self):
        with open("/etc/postfix/master.cf") as default:
            lines = default.read().splitlines()
        services = []
        for line in lines:
            fields = line.split()
            if len(fields) < 8 or line[0] in "# \t" or fields[0] not in SERVICES:
                continue
            if fields[1] == "inet":
                continue
            fields[4] = "n"  # chroot
            services.append(" ".join(fields))
        services.append(f"127.0.0.1:{self.port} inet n - n - - smtpd")
        return "\n".join(services) + "\n"

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix="ade-postfix-")
        os.chmod(self.root, 0o755)
        mail_root = f"{self.dovecot.root}/mail"
        stat = os.stat(mail_root)
        with open(f"{self.root}/main.cf", "w") as main_cf:
            main_cf.write(
                MAIN_CF.format(
                    root=self.root,
                    domain=self.domains[0],
                    domains=" ".join(self.domains),
                    mail_root=mail_root,
                    uid=stat.st_uid,
                    gid=stat.st_gid,
                )
            )
        with open(f"{self.root}/master.cf", "w") as master_cf:
            master_cf.write(self._master_cf())
        os.makedirs(f"{self.root}/queue")
        os.makedirs(f"{self.root}/data")
        shutil.chown(f"{self.root}/data", "postfix")
        with open(f"{self.root}/mailboxes", "w") as mailboxes:
            # the Dovecot user's maildir (mail_location maildir:.../mail/%u)
            mailboxes.write(f"{self.dovecot.user} {self.dovecot.user}/\n")
        try:
            self._postfix("start")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def _postfix(self, command):
        return subprocess.run(
            [POSTFIX, "-c", self.root, command],
            check=command == "start",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def log(self):
        try:
            with open(f"{self.root}/postfix.log") as log:
                return log.read()
        except OSError:
            return "(no Postfix log)"

    def bounced(self):
        """Queue ids of the messages Postfix bounced (its log says so)."""
        return re.findall(
            r"postfix/bounce\[\d+\]: (\w+): sender non-delivery", self.log()
        )

    def __exit__(self, *exc):
        self._postfix("stop")
        shutil.rmtree(self.root, ignore_errors=True)
