"""Who is calling: the peer's uid from SO_PEERCRED, then its OS user name (N5, S7).

The staff roster lookup happens in the middleware (it needs the store). The resolver is a plain
callable so tests can inject one; production uses `peer_from_socket`.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Peer:
    uid: int | None
    username: str | None
    """OS user name of uid; None when the uid has no passwd entry."""

    @property
    def label(self) -> str:
        """How the audit log names a caller that is not (or not yet) known to be staff."""
        if self.username:
            return self.username
        return f"uid:{self.uid}" if self.uid is not None else "unknown"


PeerResolver = Callable[[web.Request], Awaitable[Peer]]

_UCRED = struct.Struct("3i")


def peer_uid(request: web.Request) -> int | None:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


def username_of(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def training_resolver(identity: str) -> PeerResolver:
    """Training sockets (config api.training_sockets): the daemon's own OS user acts as
    IDENTITY; any other caller is resolved as usual (and so is not that identity)."""

    async def resolve(request: web.Request) -> Peer:
        peer = await peer_from_socket(request)
        if peer.uid is not None and peer.uid == os.getuid():
            return Peer(peer.uid, identity)
        return peer

    return resolve


async def peer_from_socket(request: web.Request) -> Peer:
    """SO_PEERCRED → uid → passwd name. The passwd lookup may go to NSS (LDAP, sssd): it runs
    off the event loop."""
    uid = peer_uid(request)
    if uid is None:
        return Peer(None, None)
    name = await asyncio.get_running_loop().run_in_executor(None, username_of, uid)
    return Peer(uid, name)
