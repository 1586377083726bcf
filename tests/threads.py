"""Running test bodies on threads, with their failures raised on the main thread."""
import threading

TIMEOUT_S = 20


def run_threads(*targets):
    """Run each target on its own thread; re-raise the first failure here."""
    errors = []

    def guarded(target):
        try:
            target()
        except BaseException as error:  # noqa: BLE001 (reported on the main thread)
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
        assert not t.is_alive(), "a thread hung"
    if errors:
        raise errors[0]
