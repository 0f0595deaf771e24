"""The live-push process: the consoles', wallboards' and portal inboxes' event streams,
served asynchronously (Starlette under uvicorn), so that no open screen holds a web
thread. It follows the queue's event stream once per process and sends each screen
small signals (``pop`` with a call id, ``seat``, ``board``, ``inbox``, ``gone``); the
page fetches the server-rendered fragment from the web in a normal, bounded request."""
