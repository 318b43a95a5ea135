"""posbridge: a point-of-sale terminal bridge.

Cash registers speak JSON-RPC 2.0 over a local WebSocket; card payments go to the CodePay
Cloud Open API, wallet payments to UCanPay as a dynamic QR. See ``docs/`` for the protocol.
"""

__version__ = "0.1.0"
