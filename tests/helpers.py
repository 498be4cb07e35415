"""Helpers shared by the integration tests."""


def kill_tree(proc, graceful: bool = False) -> None:
    """Kill a process and all its descendants (SIGKILL, as a crash; or SIGTERM first with ``graceful``)."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.terminate() if graceful else p.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=20 if graceful else 30)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
