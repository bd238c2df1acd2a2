"""``omni gateway``: the agent over HTTP (``POST /message``, ``GET /health``).

``build_gateway(agent, config)`` is the ASGI app with its rules (bearer token, bounded bodies,
validation, per-session order, a concurrency limit, a deadline per request); ``serve`` runs it
with uvicorn until SIGTERM/SIGINT. Imports point down only: gateway -> agent -> memory.
"""

from gateway.app import Gateway, GatewayConfig, build_gateway

__all__ = ["Gateway", "GatewayConfig", "build_gateway"]
