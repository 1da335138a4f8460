import os
import sys

# the golden-fixture reader lives in tools/ (shared with the scripts that write the fixtures)
sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tools"))


def pytest_terminal_summary(terminalreporter):
    """One line per parity property: how many cases compared and the worst relative error."""
    worst: dict[str, tuple[float, str]] = {}
    count: dict[str, int] = {}
    for rep in terminalreporter.stats.get("passed", []):
        for key, value in getattr(rep, "user_properties", []):
            if key.endswith("_relerr"):
                count[key] = count.get(key, 0) + 1
                if value >= worst.get(key, (-1.0, ""))[0]:
                    worst[key] = (value, rep.nodeid)
    for key, (value, nodeid) in sorted(worst.items()):
        terminalreporter.write_line(
            f"{key}: {count[key]} cases, worst relative error {value:.3g} ({nodeid})"
        )
    _hostile_summary(terminalreporter)


def _hostile_summary(terminalreporter):
    """One line for the hostile-file tests (tests/interop/bounded.py): reads, clean refusals,
    the slowest read and the largest memory peak."""
    reads = refused = 0
    slowest, biggest = (0.0, ""), (0, "")
    for reports in terminalreporter.stats.values():
        for rep in reports:
            if getattr(rep, "when", None) != "teardown":  # recorded by a fixture's teardown
                continue
            for key, value in getattr(rep, "user_properties", []):
                if key != "hostile_reads":
                    continue
                n, r, secs, secs_at, peak, peak_at = value
                reads, refused = reads + n, refused + r
                slowest = max(slowest, (secs, secs_at))
                biggest = max(biggest, (peak, peak_at))
    if reads:
        terminalreporter.write_line(
            f"hostile files: {reads} reads, {refused} refused with CheckpointFormatError, "
            f"{reads - refused} read; slowest {slowest[0]:.3f} s ({slowest[1]}); largest peak "
            f"{biggest[0] / 2**20:.2f} MiB ({biggest[1]})"
        )
