"""The root of every error the watcher raises on purpose, and the tree under it.

    WatcherError
     ├── ConfigError              the config is invalid: file, key and why (schema.py)
     ├── StoreError               the state file cannot be used: which and what to do (store/)
     ├── FetchError               a feed could not be read this time: try again at its
     │    │                       interval, backing off (fetch.py): network, timeout, 5xx, 429
     │    └── FeedRefused         it will not be read until something changes: backed off
     │         │                  harder (404 and other 4xx, too large, not a feed)
     │         ├── FeedGone       410 Gone: not polled again until its url changes
     │         └── NotAFeedError  what was fetched is no RSS or Atom feed (feed.py's reason)
     └── DeliveryError            a destination did not take a message (notifiers/base.py)
          ├── TransientDeliveryError   try again later (5xx, 408, 429)
          │    └── UnreachableError    the destination did not answer at all: it is down
          └── PermanentDeliveryError   this message will never be accepted (other 4xx)

Retries and back-off key off the class. The command line catches the root: one line,
never a traceback.
"""

from __future__ import annotations


class WatcherError(Exception):
    pass
