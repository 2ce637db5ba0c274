"""`lab room serve|join|status|leave`: a facilitator's live view of the room.

The facilitator runs `lab room serve` on their laptop: it prints the room code learners type
and the page's address (with the facilitator token). A learner runs `lab room join URL CODE
--name NAME` once (or `lab day --room URL CODE --name NAME`); from then on every exercise
check, `lab progress --push` and the blind incident's stages go to the room in the background
(room/client.py says how a verdict survives a room that does not answer).
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import TYPE_CHECKING

from app.layout import Layout
from lab.errors import LabError

if TYPE_CHECKING:
    from room.client import Sent

DEFAULT_PORT = 8070
ROOM_FILE = "room.sqlite"


def configure(parser: argparse.ArgumentParser) -> None:
    """One sub-action per role."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="facilitator: run the room service (foreground)")
    serve.add_argument("--listen", default="127.0.0.1", metavar="ADDRESS",
                       help="address to listen on (default %(default)s: this laptop only; "
                            "0.0.0.0 for the venue network)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    serve.add_argument("--fresh", action="store_true",
                       help="start a new room (new code and token; the old room's file is kept "
                            "beside it with a .old suffix)")
    join = actions.add_parser("join", help="learner: join the room (once per laptop)")
    join.add_argument("url", help="the room's address, as the facilitator shows it")
    join.add_argument("code", help="the room code")
    join.add_argument("--name", default=None, help="your name as the facilitator sees it "
                                                   "(default: your user name)")
    actions.add_parser("status", help="learner: the joined room and verdicts not yet sent "
                                      "(sends them now)")
    actions.add_parser("leave", help="learner: stop sending verdicts to the room")


def _serve(args: argparse.Namespace) -> int:
    from curriculum.exercise_bank import EXERCISES
    from room import server, service, store

    path = Layout.from_env().room_dir / ROOM_FILE
    if args.fresh and path.exists():
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                os.replace(old, old.with_name(old.name + ".old"))
    room = store.RoomStore(path)
    catalogue = [(e.id, e.module) for e in EXERCISES.values()]
    application = service.create_app(room, catalogue)
    code, token = room.secret("code"), room.secret("token")
    here = f"http://127.0.0.1:{args.port}"
    print(f"room service: {path} ({room.count()} verdicts so far)")
    print(f"  room code:        {code}")
    print(f"  facilitator page: {here}/#token={token}")
    if args.listen in ("127.0.0.1", "localhost", "::1"):
        print(f"  learners on this laptop join with: lab room join {here} {code} --name NAME")
        print("  (only this laptop can reach it: --listen 0.0.0.0 opens it to the venue network)")
    else:
        addresses = server.lan_addresses() or ("THIS-LAPTOP'S-ADDRESS",)
        print(f"  learners join with: lab room join http://{addresses[0]}:{args.port} {code} --name NAME")
        print(f"  listening on {args.listen}:{args.port}: any machine that reaches this laptop can "
              "push verdicts with the room code and read the room with the facilitator token; "
              "keep the token off the projector")
    print("Ctrl-C stops it; a restart keeps the room (same code, same token, every verdict).", flush=True)
    server.serve(application, args.listen, args.port)
    return 0


def _join(args: argparse.Namespace) -> int:
    from room import client

    try:
        joined = client.join(args.url, args.code, args.name or getpass.getuser())
    except client.RoomError as exc:
        raise LabError(str(exc), 1) from None
    print(f"joined the room at {joined.url} as {joined.name}: your exercise checks go there from now on")
    _report(client.send())
    return 0


def _report(result: Sent) -> None:
    if result.sent or result.pending or result.error:
        print(f"sent {result.sent} verdict(s); {result.pending} waiting"
              + (f" ({result.error})" if result.error else ""))


def _status(args: argparse.Namespace) -> int:
    from room import client

    joined = client.membership()
    if joined is None:
        waiting = len(client.Outbox(client.room_dir()))
        print("not in a room" + (f"; {waiting} verdict(s) kept for when you join one" if waiting else "")
              + ": `lab room join URL CODE --name NAME`")
        return 1
    print(f"in the room at {joined.url} as {joined.name}")
    result = client.send()
    print(f"{result.pending} verdict(s) waiting to be sent"
          + (f": {result.error}" if result.error else "; the room has everything"))
    return 0 if not result.pending else 1


def _leave(args: argparse.Namespace) -> int:
    from room import client

    print("left the room" if client.leave() else "not in a room")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the sub-action."""
    actions = {"serve": _serve, "join": _join, "status": _status, "leave": _leave}
    return actions[args.action](args)

