"""A MongoDB wire-protocol server for the tests: mongoeco's proxy on a SQLite engine.

Runs under Python >= 3.13 in its own virtual environment (mongoeco needs it):

    .venv-wire/bin/python tests/support/wire_server.py --db /tmp/x.sqlite --port-file p

It listens on 127.0.0.1 only, writes its port to --port-file once it accepts
connections, and serves until terminated. --user/--password turn on SCRAM auth.
The SQLite engine is used because mongoeco's memory engine slows down with every
document stored (measured: 2,000 inserts in 16 s and climbing).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path


async def serve(args: argparse.Namespace) -> None:
    from mongoeco.engines.sqlite import SQLiteEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer, WireAuthUser

    users = ()
    if args.user:
        users = (
            WireAuthUser(
                username=args.user,
                password=args.password,
                roles=({"role": "root", "db": "admin"},),
            ),
        )
    server = AsyncMongoEcoProxyServer(
        engine=SQLiteEngine(args.db), host="127.0.0.1", port=args.port, auth_users=users
    )
    address = await server.start()
    tmp = Path(args.port_file + ".tmp")
    tmp.write_text(str(address.port))
    tmp.replace(args.port_file)  # readers never see a half-written port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file of the engine")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
