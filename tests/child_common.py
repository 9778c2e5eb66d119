"""What every child process of the tests starts with (queue, statement,
reminder, uninstall children): run as ``python tests/<name>_child.py CONFIG
MODE ARGS...``, CONFIG a JSON object with the database, addons path and data
directory of the test's own server."""

import json
import sys

import odoo


def child_registry():
    """Parse the child's command line and open its database's registry, with
    warnings only in its log: returns (config, mode, args, registry)."""
    config, mode, *args = json.loads(sys.argv[1]), sys.argv[2], *sys.argv[3:]
    odoo.tools.config.parse_config(
        [
            "-d",
            config["db"],
            "--addons-path",
            config["addons_path"],
            "--data-dir",
            config["data_dir"],
            "--log-level",
            "warn",
        ]
    )
    return config, mode, args, odoo.modules.registry.Registry(config["db"])
