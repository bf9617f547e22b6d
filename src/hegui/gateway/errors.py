"""OpenAI-style error responses: ``{"error": {"message", "type", "code", "param"}}``.

Clients built on the OpenAI SDK turn these into typed exceptions (``AuthenticationError``,
``APIStatusError`` …), so every failure of the gateway is reported in this one shape.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class GatewayError(Exception):
    """A request-level failure with its HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        message = _printable(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = _printable(param) if param is not None else None
        self.headers = headers or {}
        self.extra = extra or {}
        """More fields of the error object (OpenAI's clients keep unknown ones), e.g. ``resumes_at``."""

    def body(self) -> dict[str, Any]:
        return {"error": {**self.extra, "message": self.message, "type": self.type, "code": self.code,
                          "param": self.param}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def _printable(text: str) -> str:
    """Text safe to encode as UTF-8: a lone surrogate quoted from a bad request becomes ``\\udc00``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def unauthorized(message: str) -> GatewayError:
    return GatewayError(
        401, message, type="authentication_error", code="invalid_api_key",
        headers={"www-authenticate": "Bearer"},
    )


def service_unavailable(message: str, code: str) -> GatewayError:
    """hegui itself cannot check the request (fail closed): the client may retry later."""
    return GatewayError(503, message, type="hegui_unavailable", code=code)
