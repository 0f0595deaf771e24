"""The FastAGI server keeps the garbage collector's full collections short."""

from __future__ import annotations

import gc
import threading

from rq import Queue

from agi_scripts.server import FastAGIServer, serve
from agi_scripts.sessions import AgiSettings
from calls import CallHandler
from queueing import CallQueue


def test_the_server_freezes_its_startup_objects_out_of_the_collector(queue: CallQueue) -> None:
    """A full collection over the process's modules held the interpreter ~50 ms while
    seats waited for their next caller; serve() freezes them first."""
    handler = CallHandler(queue, Queue("hotline", connection=queue.redis), None)
    server = FastAGIServer(("127.0.0.1", 0), handler, AgiSettings(sounds="/s"))
    stop = threading.Event()
    gc.unfreeze()
    thread = threading.Thread(target=serve, args=(server, stop), daemon=True)
    thread.start()
    try:
        for _ in range(250):  # up to 5 s for the server to start
            if gc.get_freeze_count() or stop.wait(0.02):
                break
        assert gc.get_freeze_count() > 0
    finally:
        stop.set()
        thread.join(timeout=5)
        gc.unfreeze()
