"""A TCP relay for tests: forwards each connection on one address to another, as is.

    python tests/tcprelay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT

Network tests use it to carry an agent's plaintext gRPC across a veth pair while
both programs keep to the loopback rule: the agent talks to a relay on its own
namespace's loopback, the controller listens on this machine's loopback, and the
link the test cuts lies between the two relays. It prints one line once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CONNECT_TIMEOUT = 5.0


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def relay(
    target: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*target), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError):
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main(listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: relay((target_host, target_port), r, w), listen_host, listen_port
    )
    print(
        f"relaying {listen_host}:{listen_port} -> {target_host}:{target_port}",
        flush=True,
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host, port, to_host, to_port = sys.argv[1:5]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(host, int(port), to_host, int(to_port)))
