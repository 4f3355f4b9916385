"""``modelport.Client(url, api_key)``: every management and inference operation.

Example::

    client = Client("http://127.0.0.1:8080", api_key="mp_...")
    client.push("model.skops", name="house-price", alias="production")
    client.predict("house-price", [[0.1, 0.2, 0.3]])
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import numpy as np

from modelport.client.packing import packed
from modelport.client.training import TrainingMethods
from modelport.client.v2 import as_named_arrays, build_request, parse_response
from modelport.errors import InvalidInputError, ModelPortError, error_from_code
from modelport.types import (
    AliasInfo,
    AliasMove,
    CreatedKey,
    KeyInfo,
    ModelInfo,
    Principal,
    Role,
    Signature,
    VersionInfo,
)

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass
class InferResult:
    """A V2 inference result: the exact version used and each output as an array."""

    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]


class _ProgressReader:
    """A file wrapper that reports bytes read (for upload progress bars)."""

    def __init__(self, stream: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._on_read(len(chunk))
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(1024 * 1024):
            yield chunk


_CODE_BY_STATUS = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def _segment(value: str) -> str:
    """A URL path segment: names can never reach another route (``../keys``, ``a?x``)."""
    return quote(value, safe="@")


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        raise error_from_code(str(error.get("code")), str(error.get("message")))
    if isinstance(error, str):  # the V2 error shape carries no code: use the status
        raise error_from_code(_CODE_BY_STATUS.get(response.status_code, ""), error)
    raise ModelPortError(f"HTTP {response.status_code}: {response.text[:200]}")


class Client(TrainingMethods):
    """A synchronous client. ``url`` and ``api_key`` default to ``MODELPORT_URL`` and
    ``MODELPORT_API_KEY``."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("MODELPORT_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("MODELPORT_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            self._http = httpx.Client(
                base_url=self.url, headers=headers, timeout=timeout, transport=transport
            )
        except (httpx.InvalidURL, ValueError, UnicodeEncodeError) as exc:
            raise ModelPortError(f"invalid server URL or API key: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ModelPortError(f"cannot reach ModelPort at {self.url}: {exc}") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ModelPortError(f"invalid server URL {self.url!r}: {exc}") from None
        except UnicodeEncodeError:
            raise ModelPortError("the API key must be ASCII text") from None
        except ValueError as exc:  # e.g. NaN, which JSON cannot carry
            raise InvalidInputError(f"the request cannot be sent as JSON: {exc}") from None
        _raise_for_error(response)
        return response

    # models -------------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in self._request("GET", "/api/v1/models").json()]

    def get_model(self, name: str) -> ModelInfo:
        return ModelInfo.model_validate(
            self._request("GET", f"/api/v1/models/{_segment(name)}").json()
        )

    def create_model(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> ModelInfo:
        body = {"name": name, "description": description, "tags": tags or {}}
        return ModelInfo.model_validate(self._request("POST", "/api/v1/models", json=body).json())

    def update_model(
        self, name: str, description: str | None = None, tags: dict[str, str] | None = None
    ) -> ModelInfo:
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = tags
        response = self._request("PATCH", f"/api/v1/models/{_segment(name)}", json=body)
        return ModelInfo.model_validate(response.json())

    def delete_model(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/models/{_segment(name)}")

    # versions -----------------------------------------------------------------------------

    def push(
        self,
        path: str | Path,
        name: str,
        *,
        alias: str | None = None,
        description: str = "",
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        signature: Signature | dict[str, Any] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> VersionInfo:
        """Upload a model file, or a model folder (packed as ``.tar.gz``), as the next
        version of ``name`` (created when missing). ``signature`` names the inputs of
        formats that do not carry one (TorchScript, pickles) or renames them."""
        fields: dict[str, str] = {"description": description}
        if alias:
            fields["alias"] = alias
        for key, value in (("metrics", metrics), ("params", params), ("tags", tags)):
            if value:
                fields[key] = json.dumps(value)
        if signature is not None:
            fields["signature"] = (
                signature.model_dump_json()
                if isinstance(signature, Signature)
                else json.dumps(signature)
            )
        path = Path(path)
        if path.is_dir():
            with packed(path) as archive:
                return self._upload(name, archive, fields, on_progress)
        if not path.is_file():
            raise InvalidInputError(f"no such file or folder: {path}")
        return self._upload(name, path, fields, on_progress)

    def _upload(
        self,
        name: str,
        path: Path,
        fields: dict[str, str],
        on_progress: Callable[[int], None] | None,
    ) -> VersionInfo:
        with path.open("rb") as stream:
            upload: Any = _ProgressReader(stream, on_progress) if on_progress else stream
            response = self._request(
                "POST",
                f"/api/v1/models/{_segment(name)}/versions",
                data=fields,
                files={"file": (path.name, upload, "application/octet-stream")},
            )
        return VersionInfo.model_validate(response.json())

    def list_versions(self, name: str) -> list[VersionInfo]:
        response = self._request("GET", f"/api/v1/models/{_segment(name)}/versions")
        return [VersionInfo.model_validate(v) for v in response.json()]

    def get_version(self, name: str, version: int) -> VersionInfo:
        response = self._request("GET", f"/api/v1/models/{_segment(name)}/versions/{version}")
        return VersionInfo.model_validate(response.json())

    def download_artifact(self, name: str, version: int, destination: str | Path) -> Path:
        destination = Path(destination)
        try:
            with self._http.stream(
                "GET", f"/api/v1/models/{_segment(name)}/versions/{version}/artifact"
            ) as response:
                if not response.is_success:
                    response.read()
                    _raise_for_error(response)
                with destination.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise ModelPortError(f"cannot reach ModelPort at {self.url}: {exc}") from None
        return destination

    # aliases ------------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> AliasInfo:
        response = self._request(
            "PUT",
            f"/api/v1/models/{_segment(name)}/aliases/{_segment(alias)}",
            json={"version": version},
        )
        return AliasInfo.model_validate(response.json())

    def remove_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/api/v1/models/{_segment(name)}/aliases/{_segment(alias)}")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        params = {"alias": alias} if alias else None
        response = self._request(
            "GET", f"/api/v1/models/{_segment(name)}/alias-history", params=params
        )
        return [AliasMove.model_validate(m) for m in response.json()]

    # inference ----------------------------------------------------------------------------

    def predict(self, ref: str, features: Any) -> list[Any]:
        """Simple JSON prediction: ``features`` is a list of rows (or a 2-D array)."""
        rows = features.tolist() if hasattr(features, "tolist") else features
        response = self._request(
            "POST", f"/models/{_segment(ref)}/predict", json={"features": rows}
        )
        prediction: list[Any] = response.json()["prediction"]
        return prediction

    def infer(
        self,
        ref: str,
        inputs: Any,
        *,
        outputs: list[str] | None = None,
        binary: bool | None = None,
    ) -> InferResult:
        """V2 inference. ``inputs`` is a numpy array (the model's single input), a pandas
        DataFrame (one input per column) or a mapping of input names to arrays. Numeric
        tensors of 4 KiB or more go as raw bytes (``binary`` forces one way or the other).
        ``ref`` is ``name``, ``name@alias`` or ``name@N``."""
        arrays, parameters = as_named_arrays(inputs)
        body, headers = build_request(arrays, parameters, outputs, binary)
        name, _, selector = ref.partition("@")
        path = f"/v2/models/{_segment(name)}"
        if selector:
            path += f"/versions/{_segment(selector)}"
        response = self._request("POST", path + "/infer", content=body, headers=headers)
        header_length = response.headers.get("inference-header-content-length")
        document, arrays_out = parse_response(response.content, header_length)
        return InferResult(
            model_name=document["model_name"],
            model_version=str(document.get("model_version", "")),
            outputs=arrays_out,
            id=document.get("id"),
        )

    def ready(self) -> bool:
        try:
            return self._http.get("/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    # keys ---------------------------------------------------------------------------------

    def whoami(self) -> Principal:
        return Principal.model_validate(self._request("GET", "/api/v1/whoami").json())

    def create_key(
        self, name: str, role: Role | str, *, rate_limit: float | None = None
    ) -> CreatedKey:
        body: dict[str, object] = {"name": name, "role": Role(role).value}
        if rate_limit is not None:
            body["rate_limit"] = rate_limit
        return CreatedKey.model_validate(self._request("POST", "/api/v1/keys", json=body).json())

    def list_keys(self) -> list[KeyInfo]:
        return [KeyInfo.model_validate(k) for k in self._request("GET", "/api/v1/keys").json()]

    def revoke_key(self, key_id: int) -> KeyInfo:
        return KeyInfo.model_validate(self._request("DELETE", f"/api/v1/keys/{key_id}").json())
