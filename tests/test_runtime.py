"""Connections built by the composition root."""

import threading

from hotline.config import load_settings
from hotline.runtime import connect_redis


def test_a_burst_of_threads_waits_for_redis_connections_instead_of_failing(  # type: ignore[no-untyped-def]
    redis_server, tmp_path
) -> None:
    """200 AGI sessions at once each hold a thread; redis-py's default pool refuses
    the 101st connection. Ours makes the thread wait for one."""
    settings = load_settings(
        {
            "REDIS_URL": redis_server.url,
            "HOTLINE_VAR_DIR": str(tmp_path),
            "HOTLINE_REDIS_MAX_CONNECTIONS": "16",
        }
    )
    client = connect_redis(settings)
    errors: list[BaseException] = []

    def hold_a_connection(n: int) -> None:
        try:
            client.blpop([f"burst-test-{n}"], timeout=0.2)  # holds its connection 0.2 s
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=hold_a_connection, args=(n,)) for n in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(client.connection_pool._connections) <= 16  # type: ignore[attr-defined]
    client.close()
