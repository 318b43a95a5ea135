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
    CheckoutQrParams,
    CompletionParams,
    CryptoSaleParams,
    EventsReplayParams,
    Params,
    PingParams,
    PreauthCancelParams,
    PreauthParams,
    QrSaleParams,
    RefundParams,
    SaleParams,
    StatusParams,
    TerminalsListParams,
    TipAdjustParams,
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
    "CheckoutQrParams",
    "CompletionParams",
    "CryptoSaleParams",
    "ErrorCode",
    "EventsReplayParams",
    "FrameError",
    "Params",
    "PingParams",
    "PreauthCancelParams",
    "PreauthParams",
    "QrSaleParams",
    "RefundParams",
    "SaleParams",
    "StatusParams",
    "TerminalsListParams",
    "TipAdjustParams",
    "TransactionsListParams",
    "VoidParams",
    "error_frame",
    "notification_frame",
    "params_fingerprint",
    "parse_frame",
    "parse_params",
    "result_frame",
]
