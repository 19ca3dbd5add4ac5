"""Closing an aiortc peer connection so that nothing of it keeps running.

aiortc 1.16's ``RTCPeerConnection.close()`` races the connection's own connect task (ICE, then
DTLS, then the RTP senders, receivers and SCTP). A peer closed while that task is still going,
a viewer that leaves or reloads just after its offer, measured in tests/test_churn.py:

- DTLS ``stop()`` does not end a handshake in progress. When it completes, the connect task
  starts senders and receivers that ``close()`` already went past. Their RTCP loops then run
  for good, sending into a closed transport (a task per sender, and its transport, kept).
- aioice 0.13's ``connect()`` starts consent checks when it resumes after ``close()``. With no
  candidate pairs left, the check loop never fails, so it never ends.
- The connect task fails on a transport stopped under it, and nobody retrieves the
  exception: asyncio logs "Task exception was never retrieved" at ERROR for a plain reload.

:func:`close_peer` closes the peer, waits for that task, and stops what it started late. It
reaches into aiortc's and aioice's private state defensively, like
:func:`sensorlink.webrtc.peer.enlarge_receive_buffers`: if an upgrade renames something, a step does
nothing and the rest still runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: How long a connect task may take to notice its transports are gone. On closed sockets it
#: fails at once; this only bounds a close that would otherwise wait for a wedged one.
CONNECT_SETTLE_S = 10.0


def connect_tasks(pc: Any) -> list[asyncio.Task[Any]]:
    """aiortc's pending ``RTCPeerConnection.__connect`` tasks of ``pc``."""
    found = []
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        code = getattr(coro, "cr_code", None)
        if frame is not None and code is not None and code.co_name == "__connect" \
                and frame.f_locals.get("self") is pc:
            found.append(task)
    return found


def ice_transports(pc: Any) -> set[Any]:
    transports = {t.receiver.transport.transport for t in pc.getTransceivers()
                  if t.receiver.transport is not None}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport.transport)
    return transports


async def close_peer(pc: Any) -> None:
    """``pc.close()``, then wait for aiortc's connect task and stop what it started late."""
    connecting = connect_tasks(pc)
    await pc.close()
    if connecting:
        done, _ = await asyncio.wait(connecting, timeout=CONNECT_SETTLE_S)
        for task in done:
            if not task.cancelled():
                task.exception()  # a connect cut short by the close: expected, not an error
    # Each stop() does nothing unless the connect task started the part after close().
    for transceiver in pc.getTransceivers():
        await transceiver.sender.stop()
        await transceiver.receiver.stop()
    if pc.sctp is not None:
        await pc.sctp.stop()
    for ice in ice_transports(pc):
        consent = getattr(getattr(ice, "_connection", None), "_query_consent_task", None)
        if consent is not None and not consent.done():
            consent.cancel()
            await asyncio.gather(consent, return_exceptions=True)
