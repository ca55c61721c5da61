"""Images in prompts: ``mal.Image``. This module does no I/O beyond reading the
file that :meth:`Image.from_path` is given.

The media type is sniffed from the magic bytes (PNG, JPEG, GIF, WebP: the
types every provider takes). The base64 text is computed once per image and
kept, so a retry or a fallback never encodes the bytes again. Neither the
bytes nor their base64 ever appear in a ``repr`` or an error message.
"""

from __future__ import annotations

import base64 as _base64
import binascii
import os
import urllib.parse
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["Image", "MEDIA_TYPES", "MAX_IMAGE_BYTES"]

MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

#: The largest image each provider documents, in bytes. OpenAI: 20 MB per
#: image (its vision guide); Anthropic: 5 MB per image through the API (its
#: vision guide, "Image size limits"), measured on the base64 text as sent, not
#: on the decoded image (its error reads "image exceeds 5 MB maximum: 8259148
#: bytes > 5242880 bytes" for a base64 source; see `BASE64_LIMITS`). Ollama
#: documents none.
MAX_IMAGE_BYTES = {
    "openai": 20 * 1024 * 1024,
    "openai-responses": 20 * 1024 * 1024,
    "azure": 20 * 1024 * 1024,
    "anthropic": 5 * 1024 * 1024,
}

#: The providers whose limit holds for the base64 text rather than the bytes.
BASE64_LIMITS = frozenset({"anthropic"})

Detail = Literal["auto", "low", "high"]


def sniff(data: bytes) -> str | None:
    """The media type of image bytes, from their magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class Image:
    """An image part of a message's content: bytes of a known type, or a URL."""

    __slots__ = ("_b64", "data", "detail", "media_type", "url")

    def __init__(
        self,
        *,
        data: bytes | None = None,
        url: str | None = None,
        media_type: str | None = None,
        detail: Detail | None = None,
    ) -> None:
        if (data is None) == (url is None):
            raise ConfigError("an Image has either bytes or a URL")
        if detail not in (None, "auto", "low", "high"):
            raise ConfigError(f"Image detail must be 'auto', 'low' or 'high', not {detail!r}")
        if data is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ConfigError(f"Image bytes must be bytes, not {type(data).__name__}")
            data = bytes(data)
            sniffed = sniff(data)
            if media_type is None:
                if sniffed is None:
                    raise ConfigError(
                        f"the image bytes are not PNG, JPEG, GIF or WebP "
                        f"({len(data)} bytes starting {data[:4]!r})"
                    )
                media_type = sniffed
        if media_type is not None and media_type not in MEDIA_TYPES:
            raise ConfigError(
                f"image media type must be one of {', '.join(MEDIA_TYPES)}, not {media_type!r}"
            )
        self.data = data
        self.url = url
        self.media_type = media_type
        self.detail = detail
        self._b64: str | None = None

    @classmethod
    def from_bytes(
        cls, data: bytes, media_type: str | None = None, *, detail: Detail | None = None
    ) -> Image:
        """An image from its bytes; the type is sniffed when not given."""
        return cls(data=data, media_type=media_type, detail=detail)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, detail: Detail | None = None) -> Image:
        """An image read from a file."""
        try:
            with open(path, "rb") as file:
                data = file.read()
        except OSError as exc:
            name = os.fspath(path)
            raise ConfigError(f"cannot read the image {name!r}: {exc.strerror}") from None
        return cls(data=data, detail=detail)

    @classmethod
    def from_url(cls, url: str, *, detail: Detail | None = None) -> Image:
        """An image at an http(s) URL, or a ``data:`` URL (decoded to bytes, so
        that it works for providers that take no URLs)."""
        if not isinstance(url, str):
            raise ConfigError(f"an image URL must be a str, not {type(url).__name__}")
        if url.startswith("data:"):
            head, comma, payload = url.partition(",")
            if not comma or not head.endswith(";base64"):
                raise ConfigError("a data: image URL must be base64 (data:image/png;base64,...)")
            try:
                data = _base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError("the data: image URL is not valid base64") from None
            media_type = head[5:-7] or None
            return cls(data=data, media_type=media_type, detail=detail)
        if not url.startswith(("http://", "https://")):
            raise ConfigError("an image URL must start with http://, https:// or data:")
        return cls(url=url, detail=detail)

    @property
    def base64(self) -> str:
        """The bytes as base64, computed once."""
        if self._b64 is None:
            if self.data is None:
                raise ConfigError("a URL image has no bytes to encode")
            self._b64 = _base64.b64encode(self.data).decode("ascii")
        return self._b64

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{self.base64}"

    def check(self, provider: str) -> None:
        """Raise :class:`mal.ConfigError` if ``provider`` cannot take this image."""
        if self.data is None:
            if provider == "ollama":
                raise ConfigError(
                    "Ollama takes no image URLs; use Image.from_bytes or Image.from_path"
                )
            return
        limit = MAX_IMAGE_BYTES.get(provider)
        if limit is None:
            return
        if provider in BASE64_LIMITS:
            size = 4 * -(-len(self.data) // 3)  # the length of the base64 text, padding included
            if size > limit:
                raise ConfigError(
                    f"the image is {len(self.data)} bytes, {size} as base64; {provider} takes "
                    f"images of at most {limit} bytes of base64"
                )
        elif len(self.data) > limit:
            raise ConfigError(
                f"the image is {len(self.data)} bytes; {provider} takes images of at most "
                f"{limit} bytes"
            )

    def to_openai(self) -> dict[str, Any]:
        part: dict[str, Any] = {"url": self.url if self.url is not None else self.data_url}
        if self.detail is not None:
            part["detail"] = self.detail
        return {"type": "image_url", "image_url": part}

    def to_anthropic(self) -> dict[str, Any]:
        if self.url is not None:
            return {"type": "image", "source": {"type": "url", "url": self.url}}
        source = {"type": "base64", "media_type": self.media_type, "data": self.base64}
        return {"type": "image", "source": source}

    def ollama_base64(self) -> str:
        return self.base64

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return (self.data, self.url, self.media_type, self.detail) == (
            other.data,
            other.url,
            other.media_type,
            other.detail,
        )

    def __hash__(self) -> int:
        return hash((self.data, self.url, self.media_type, self.detail))

    def __repr__(self) -> str:
        if self.url is not None:
            # Presigned URLs carry their secrets in the query string.
            parts = urllib.parse.urlsplit(self.url)
            return f"Image(url={parts.scheme}://{parts.netloc}{parts.path!s})"
        size = len(self.data) if self.data is not None else 0
        return f"Image({self.media_type}, {size} bytes)"
