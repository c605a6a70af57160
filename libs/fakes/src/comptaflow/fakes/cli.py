"""`comptaflow fake <system>`: run one fake in the foreground.

`add_fake_parser(subparsers)` adds the `fake` command with one sub-command per fake (each registered in
`FAKES` with its argument builder and runner); `run_fake(args)` runs the chosen one. Nothing heavier than
argparse is imported until a fake runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Runner = Callable[[argparse.Namespace], int]


def _pennylane_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=("small", "medium", "large"), default="small")
    parser.add_argument("--token", default="test-token", help="the bearer token of the generated company")
    parser.add_argument("--rate-limit", type=int, default=25, help="requests per window per token")
    parser.add_argument("--rate-window", type=float, default=5.0, help="seconds")
    parser.add_argument("--export-delay", type=float, default=1.0, help="seconds before an export is ready")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 503")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay added to every API request")


def _run_pennylane(args: argparse.Namespace) -> int:
    from comptaflow.fakes.pennylane import FakePennylane
    from comptaflow.fakes.pennylane.server import run

    fake = FakePennylane(
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        export_delay=args.export_delay,
        fail_rate=args.fail_rate,
        latency_ms=args.latency_ms,
        fault_seed=args.seed,
    )
    fake.add_company(seed=args.seed, size=args.size, token=args.token)
    run(fake, host=args.host, port=args.port, token=args.token)
    return 0


FAKES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {
    "pennylane": ("the Pennylane Company API v2", _pennylane_arguments, _run_pennylane),
}


def add_fake_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fake = subparsers.add_parser("fake", help="run a local fake of an external system")
    systems = fake.add_subparsers(dest="fake", required=True)
    for name, (description, arguments, _) in FAKES.items():
        arguments(systems.add_parser(name, help=f"a fake of {description}"))


def run_fake(args: argparse.Namespace) -> int:
    _, _, runner = FAKES[args.fake]
    return runner(args)
