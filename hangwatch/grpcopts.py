"""Channel and server options both ends agree on (message limits, keepalive).

Keepalive pings must be allowed by the server at least as often as clients send
them, or the server answers GOAWAY too_many_pings; both sides read these numbers.
"""

from __future__ import annotations

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Metadata naming the person behind a plaintext call (see controller/api/identity.py).
ACTOR_HEADER = "x-hangwatch-actor"
KEEPALIVE_MS = 20_000
MIN_PING_INTERVAL_MS = 10_000


def server_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def channel_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Reconnect quickly after a controller restart; tenacity paces the retries.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
