"""One error hierarchy for the CLI (exit codes) and the API (problem+json status codes)."""

from __future__ import annotations


class AssayError(Exception):
    """Base class. ``status`` is the HTTP status, ``exit_code`` the CLI exit code."""

    status = 500
    exit_code = 1
    title = "Internal error"


class InputError(AssayError):
    """Bad spec, data or model supplied by the user: CLI exit 2, HTTP 4xx.

    The message names the file, the field and what was expected.
    """

    status = 422
    exit_code = 2
    title = "Invalid input"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.expected = expected
        self.message = message
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}:")
        if self.field:
            parts.append(f"field '{self.field}':")
        parts.append(self.message if self.message.endswith((".", "?", ")")) else self.message + ".")
        if self.expected:
            parts.append(f"Expected: {self.expected}.")
        return " ".join(parts)


class UntrustedModelError(InputError):
    """A skops file references types outside the allow-list."""

    def __init__(self, path: str, types: list[str]) -> None:
        self.types = sorted(types)
        super().__init__(
            "the model file references types that are not on Assay's allow-list and was not loaded: "
            + ", ".join(self.types),
            file=path,
            field="model",
            expected="a .skops file containing only allow-listed scikit-learn types "
            "(see service/inputs/skops_allowlist.txt), or a LightGBM/XGBoost/ONNX model",
        )


class PickleRefusedError(InputError):
    """A pickle/joblib model was supplied without --allow-pickle (never accepted over HTTP)."""

    status = 415

    def __init__(self, path: str) -> None:
        super().__init__(
            "the model is a pickle/joblib file; loading it would execute arbitrary code, so it was refused",
            file=path,
            field="model",
            expected="a .skops, LightGBM .txt, XGBoost .json/.ubj or .onnx model; "
            "or pass --allow-pickle on the CLI for a file you own",
        )


class PayloadTooLarge(InputError):
    status = 413
    title = "Payload too large"


class NotFound(AssayError):
    status = 404
    exit_code = 2
    title = "Not found"


class Forbidden(AssayError):
    status = 403
    exit_code = 2
    title = "Forbidden"


class Unauthorized(AssayError):
    status = 401
    exit_code = 2
    title = "Unauthorized"


class Conflict(AssayError):
    status = 409
    exit_code = 2
    title = "Conflict"


__all__ = [
    "AssayError",
    "Conflict",
    "Forbidden",
    "InputError",
    "NotFound",
    "PayloadTooLarge",
    "PickleRefusedError",
    "Unauthorized",
    "UntrustedModelError",
]
