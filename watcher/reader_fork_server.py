"""Imported first by the fork server the reader processes are forked from, and nowhere
else (`watcher.readers`): it ignores Ctrl-C and SIGTERM, and so does every reader
process from the moment it is forked.

systemd, and a terminal on Ctrl-C, signal the whole process group. A reader that ignored
them only once its initializer ran could be killed while starting: its pool broke, and the
document another worker had in hand was lost with it. The fork server ends with the
watcher (its pipe from the watcher closes), and each reader ends with it too.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
