"""A local SMTP outbox for the demo: every email it receives is stored as an
.eml file in the given folder (nothing leaves the machine)."""

import argparse
import logging
import pathlib
import time
from datetime import datetime

from aiosmtpd.controller import Controller

_logger = logging.getLogger("outbox")


class SaveToFolder:
    def __init__(self, folder):
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = self.folder / f"{stamp}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        _logger.info("%s to %s", path.name, ", ".join(envelope.rcpt_tos))
        return "250 Stored in the outbox"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="outbox: %(message)s")
    controller = Controller(
        SaveToFolder(args.folder), hostname="127.0.0.1", port=args.port
    )
    controller.start()
    _logger.info("listening on 127.0.0.1:%s, saving to %s", args.port, args.folder)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
