"""The register side of posbridge: the ECR JSON-RPC 2.0 protocol over WebSocket.

* :mod:`posbridge.ecr.protocol` - error codes, frame parsing and encoding (pure);
* :mod:`posbridge.ecr.params` - one frozen dataclass per method and their validation (pure);
* :mod:`posbridge.ecr.methods` - what each method does, over the engine;
* :mod:`posbridge.ecr.server` - the WebSocket server, a thin pump;
* :mod:`posbridge.ecr.hub` - live notification delivery.

The published contract for register developers is ``docs/ecr-protocol.md``.
"""

from posbridge.ecr.params import (
    AuthParams,
    BatchCloseParams,
    BatchStatusParams,
    CancelParams,
    CryptoSaleParams,
    EventsReplayParams,
    Params,
    PingParams,
    QrSaleParams,
    RefundParams,
    SaleParams,
    StatusParams,
    TerminalsListParams,
    TransactionsListParams,
    VoidParams,
    params_fingerprint,
    parse_params,
)
from posbridge.ecr.protocol import (
    METHOD_ROLES,
    METHODS,
    PIN_METHODS,
    Call,
    ErrorCode,
    FrameError,
    error_frame,
    notification_frame,
    parse_frame,
    result_frame,
)

__all__ = [
    "METHODS",
    "METHOD_ROLES",
    "PIN_METHODS",
    "AuthParams",
    "BatchCloseParams",
    "BatchStatusParams",
    "Call",
    "CancelParams",
    "CryptoSaleParams",
    "ErrorCode",
    "EventsReplayParams",
    "FrameError",
    "Params",
    "PingParams",
    "QrSaleParams",
    "RefundParams",
    "SaleParams",
    "StatusParams",
    "TerminalsListParams",
    "TransactionsListParams",
    "VoidParams",
    "error_frame",
    "notification_frame",
    "params_fingerprint",
    "parse_frame",
    "parse_params",
    "result_frame",
]
