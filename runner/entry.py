"""The `campaign` executable: stop signals are handled before anything is imported, so a
Ctrl-C or SIGTERM even during start-up exits 75 with one line instead of a traceback."""

from __future__ import annotations

import sys

from runner import signals

EXIT_STOPPED = 75  # runner.exitcodes, not imported yet on purpose


def main() -> int:
    try:
        signals.install()
        from runner.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:  # before the CLI could catch it (start-up)
        print("stopped by a signal before anything was sent; rerun to start", file=sys.stderr)
        return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
