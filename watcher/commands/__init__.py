"""The commands' shared ground: exit codes, and the config a command runs with."""

from __future__ import annotations

import argparse

from watcher import logs
from watcher.config import Config, config_path, load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
INSPECT_MAX_BYTES = 50_000_000


def config_of(args: argparse.Namespace) -> Config:
    config = load_config(config_path(args.config))
    if args.log_format is None:  # `--log-format` wins over the config
        logs.set_format(config.log_format)
    return config
