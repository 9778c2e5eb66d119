"""A real Dovecot IMAP server for the tests: its own configuration, users,
certificate and mail in a temporary directory, on free ports of 127.0.0.1
(IMAP with STARTTLS, and IMAPS, which Odoo's fetchmail.server speaks); never
the system's service. Debian's ``dovecot-imapd`` (scripts/setup.sh)."""

import grp
import imaplib
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time

from .common import free_port, self_signed_certificate

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def dovecot_available():
    return os.path.exists(DOVECOT)


class DovecotServer:
    """``with DovecotServer(user, password) as imap:`` a running Dovecot
    whose one mailbox is ``user``; ``port`` (STARTTLS) and ``ssl_port``."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.port, self.ssl_port = free_port(), free_port()
        self.root = None

    def __enter__(self):
        self.root = tempfile.mkdtemp(prefix="ade-dovecot-")
        os.chmod(self.root, 0o755)
        for folder in ("run", "state", "mail"):
            os.makedirs(f"{self.root}/{folder}")
        cert, key = self_signed_certificate(self.root)
        with open(f"{self.root}/passwd", "w") as passwd:
            passwd.write(f"{self.user}:{{PLAIN}}{self.password}\n")
        uid, gid = os.getuid(), os.getgid()
        # Dovecot's processes never run as root: as root, the package's users
        user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
        login_user = user
        if uid == 0:
            user, group, login_user = "dovecot", "dovecot", "dovenull"
            uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
            os.chown(f"{self.root}/mail", uid, gid)
        with open(f"{self.root}/dovecot.conf", "w") as config:
            config.write(
                CONFIG.format(
                    root=self.root,
                    cert=cert,
                    key=key,
                    user=user,
                    group=group,
                    login_user=login_user,
                    uid=uid,
                    gid=gid,
                    port=self.port,
                    ssl_port=self.ssl_port,
                )
            )
        # it forks into the background: no pipe is left open to wait on
        subprocess.run(
            [DOVECOT, "-c", f"{self.root}/dovecot.conf"],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        try:
            self._wait_ready()
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + 15
        while True:
            try:
                self.login().logout()
                return
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise RuntimeError(self.log()) from None
                time.sleep(0.2)

    def log(self):
        try:
            with open(f"{self.root}/dovecot.log") as log:
                return log.read()
        except OSError:
            return "(no Dovecot log)"

    def login(self):
        """An IMAP session on the plain port, upgraded with STARTTLS (the
        self-signed certificate is the test's own)."""
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        imap.starttls(ssl_context=context)
        imap.login(self.user, self.password)
        return imap

    def append(self, raw):
        """Deliver ``raw`` (bytes) into the INBOX, unread (IMAP APPEND)."""
        imap = self.login()
        try:
            status, _data = imap.append("INBOX", None, None, raw)
            if status != "OK":
                raise RuntimeError(f"APPEND refused: {status}")
        finally:
            imap.logout()

    def count(self, criteria="UNSEEN"):
        imap = self.login()
        try:
            imap.select("INBOX")
            _status, data = imap.search(None, criteria)
            return len(data[0].split())
        finally:
            imap.logout()

    def __exit__(self, *exc):
        subprocess.run(
            [DOVECOT, "-c", f"{self.root}/dovecot.conf", "stop"],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        # the master exits once its children have
        time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)
