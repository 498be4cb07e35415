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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str, proc=None, log=None, every: float = 1.0):
    """Poll ``check()`` until it returns something truthy (returned); fail naming ``what`` after ``timeout``
    seconds, or as soon as ``proc`` has exited (with the tail of ``log``)."""
    import time
    from pathlib import Path

    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text()[-4000:] if log else ""
            raise AssertionError(f"{what}: the process exited ({proc.returncode}) first\n{tail}")
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def report_has_sets(sdir, sets=("id", "ood")) -> list[dict]:
    """A sweep's report has a recovery row and figure for every evaluation set in ``sets`` (and no other):
    the rows of its boundary.csv."""
    import csv
    from pathlib import Path

    rdir = Path(sdir) / "report"
    report = (rdir / "report.md").read_text()
    rows = list(csv.DictReader(open(rdir / "boundary.csv")))
    assert {r["rule"] for r in rows} == set(sets), rows
    for name in sets:
        assert f"| {name} |" in report and (rdir / f"recovery_{name}.png").is_file()
    return rows
