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
from pathlib import Path
from typing import IO, Any

import httpx

from modelport.errors import ModelPortError, error_from_code
from modelport.types import (
    AliasInfo,
    AliasMove,
    CreatedKey,
    KeyInfo,
    ModelInfo,
    Principal,
    Role,
    VersionInfo,
)

DEFAULT_URL = "http://127.0.0.1:8080"


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


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        raise error_from_code(str(error.get("code")), str(error.get("message")))
    if isinstance(error, str):
        raise ModelPortError(error)
    raise ModelPortError(f"HTTP {response.status_code}: {response.text[:200]}")


class Client:
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
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

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
        _raise_for_error(response)
        return response

    # models -------------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in self._request("GET", "/api/v1/models").json()]

    def get_model(self, name: str) -> ModelInfo:
        return ModelInfo.model_validate(self._request("GET", f"/api/v1/models/{name}").json())

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
        response = self._request("PATCH", f"/api/v1/models/{name}", json=body)
        return ModelInfo.model_validate(response.json())

    def delete_model(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/models/{name}")

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
        on_progress: Callable[[int], None] | None = None,
    ) -> VersionInfo:
        """Upload a model file as the next version of ``name`` (created when missing)."""
        fields: dict[str, str] = {"description": description}
        if alias:
            fields["alias"] = alias
        for key, value in (("metrics", metrics), ("params", params), ("tags", tags)):
            if value:
                fields[key] = json.dumps(value)
        path = Path(path)
        with path.open("rb") as stream:
            upload: Any = _ProgressReader(stream, on_progress) if on_progress else stream
            response = self._request(
                "POST",
                f"/api/v1/models/{name}/versions",
                data=fields,
                files={"file": (path.name, upload, "application/octet-stream")},
            )
        return VersionInfo.model_validate(response.json())

    def list_versions(self, name: str) -> list[VersionInfo]:
        response = self._request("GET", f"/api/v1/models/{name}/versions")
        return [VersionInfo.model_validate(v) for v in response.json()]

    def get_version(self, name: str, version: int) -> VersionInfo:
        response = self._request("GET", f"/api/v1/models/{name}/versions/{version}")
        return VersionInfo.model_validate(response.json())

    def download_artifact(self, name: str, version: int, destination: str | Path) -> Path:
        destination = Path(destination)
        try:
            with self._http.stream(
                "GET", f"/api/v1/models/{name}/versions/{version}/artifact"
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
            "PUT", f"/api/v1/models/{name}/aliases/{alias}", json={"version": version}
        )
        return AliasInfo.model_validate(response.json())

    def remove_alias(self, name: str, alias: str) -> None:
        self._request("DELETE", f"/api/v1/models/{name}/aliases/{alias}")

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        params = {"alias": alias} if alias else None
        response = self._request("GET", f"/api/v1/models/{name}/alias-history", params=params)
        return [AliasMove.model_validate(m) for m in response.json()]

    # inference ----------------------------------------------------------------------------

    def predict(self, ref: str, features: Any) -> list[Any]:
        """Simple JSON prediction: ``features`` is a list of rows (or a 2-D array)."""
        rows = features.tolist() if hasattr(features, "tolist") else features
        response = self._request("POST", f"/models/{ref}/predict", json={"features": rows})
        prediction: list[Any] = response.json()["prediction"]
        return prediction

    def infer(
        self, name: str, inputs: list[dict[str, Any]], version: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Open Inference Protocol V2 JSON inference; returns the response document."""
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
        result: dict[str, Any] = self._request(
            "POST", path, json={"inputs": inputs, **extra}
        ).json()
        return result

    def ready(self) -> bool:
        try:
            return self._http.get("/v2/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    # keys ---------------------------------------------------------------------------------

    def whoami(self) -> Principal:
        return Principal.model_validate(self._request("GET", "/api/v1/whoami").json())

    def create_key(self, name: str, role: Role | str) -> CreatedKey:
        body = {"name": name, "role": Role(role).value}
        return CreatedKey.model_validate(self._request("POST", "/api/v1/keys", json=body).json())

    def list_keys(self) -> list[KeyInfo]:
        return [KeyInfo.model_validate(k) for k in self._request("GET", "/api/v1/keys").json()]

    def revoke_key(self, key_id: int) -> KeyInfo:
        return KeyInfo.model_validate(self._request("DELETE", f"/api/v1/keys/{key_id}").json())
