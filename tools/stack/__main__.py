"""`make stack-up` / `make stack-down` / `python -m tools.stack status`."""

from __future__ import annotations

import argparse
import sys

from tools.stack import manager
from tools.stack.components import StackSettings
from tools.stack.processes import StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "init"])
    parser.add_argument("--profile", choices=["cluster", "local"], default="cluster")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for health")
    args = parser.parse_args(argv)
    stack = StackSettings.from_env(args.profile)
    try:
        if args.command == "up":
            manager.up(stack, timeout=args.timeout)
        elif args.command == "down":
            manager.down(stack)
        elif args.command == "init":
            manager.init_from_env(timeout=args.timeout)
        else:
            alive = manager.status(stack)
            for name, pid in alive.items():
                print(f"{name:24s} pid {pid}")
            print(f"{len(alive)} process(es) of the {stack.profile} stack running ({stack.home})")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
