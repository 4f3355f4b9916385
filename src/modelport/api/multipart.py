"""Streaming multipart/form-data: the ``file`` part goes straight into an artifact blob
writer (hashed while written, never held whole in memory); small text fields are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from modelport.errors import InvalidInputError, TooLargeError, UnsupportedMediaTypeError
from modelport.storage.artifacts import ArtifactStore, BlobWriter

MAX_FIELD_BYTES = 1024 * 1024
MAX_FIELDS = 32


@dataclass
class UploadForm:
    """Text fields of the form and the (uncommitted) blob writer holding the file."""

    fields: dict[str, str] = field(default_factory=dict)
    file: BlobWriter | None = None
    filename: str | None = None


class _FormCollector:
    def __init__(self, store: ArtifactStore, max_file_bytes: int, file_field: str) -> None:
        self.form = UploadForm()
        self._store = store
        self._max_file_bytes = max_file_bytes
        self._file_field = file_field
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False
        self.ended = False
        self.file_complete = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _end(self) -> None:
        self.ended = True

    def _part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()
        self._name = None
        self._is_file = False

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidInputError("a multipart part has no name")
        self._name = raw_name.decode("utf-8", errors="replace")
        if self._name == self._file_field:
            if self.form.file is not None:
                raise InvalidInputError(f"send exactly one '{self._file_field}' part")
            filename = options.get(b"filename")
            self.form.filename = filename.decode("utf-8", errors="replace") if filename else None
            self.form.file = self._store.open_writer(self._max_file_bytes)
            self._is_file = True
        elif len(self.form.fields) >= MAX_FIELDS:
            raise InvalidInputError(f"too many form fields (at most {MAX_FIELDS})")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self.form.file is not None
            self.form.file.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise TooLargeError(f"form field '{self._name}' is larger than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._is_file:
            self.file_complete = True
        elif self._name is not None and self._name is not None:
            try:
                self.form.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError(f"form field '{self._name}' is not UTF-8 text") from None


async def stream_upload(
    request: Request, store: ArtifactStore, max_file_bytes: int, file_field: str = "file"
) -> UploadForm:
    """Parse a multipart upload; on any failure the partial blob is discarded."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaTypeError(
            "upload a model as multipart/form-data with a 'file' part "
            "(curl -F file=@model.skops ...)"
        )
    collector = _FormCollector(store, max_file_bytes, file_field)
    try:
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if not (collector.ended and collector.file_complete) and collector.form.file is not None:
            raise ClientDisconnect()
    except BaseException as exc:
        if collector.form.file is not None:
            collector.form.file.discard()
        if isinstance(exc, ClientDisconnect):
            raise InvalidInputError("the upload was cut off before it finished") from None
        if isinstance(exc, ValueError) and not isinstance(exc, InvalidInputError):
            raise InvalidInputError(f"malformed multipart body: {exc}") from None
        raise
    if collector.form.file is None:
        raise InvalidInputError(f"the upload has no '{file_field}' part")
    if not collector.ended:
        collector.form.file.discard()
        raise InvalidInputError("the upload was cut off before it finished")
    collector.form.file.close()
    return collector.form
