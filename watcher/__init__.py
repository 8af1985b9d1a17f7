"""watcher: announce new conference talks from feeds to Slack, webhooks, email or the console."""

__version__ = "0.1.0"
