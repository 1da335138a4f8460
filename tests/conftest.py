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
