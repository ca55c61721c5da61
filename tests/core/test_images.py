"""``mal.Image``: sniffed types, the parts each provider is sent, size limits,
base64 encoded once, and bytes that never show in a repr or an error."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import mal
from mal.images import MAX_IMAGE_BYTES
from mal.protocols import GenerateParams, get_protocol, prompt_length

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
GIF = b"GIF89a" + b"\x00" * 24
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
def test_types_are_sniffed(data: bytes, media_type: str) -> None:
    assert mal.Image.from_bytes(data).media_type == media_type


def test_what_is_not_an_image_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(mal.ConfigError, match="not PNG, JPEG, GIF or WebP"):
        mal.Image.from_bytes(b"%PDF-1.7 secret")
    with pytest.raises(mal.ConfigError, match="media type"):
        mal.Image.from_bytes(PNG, media_type="image/tiff")
    with pytest.raises(mal.ConfigError, match=r"missing\.png"):
        mal.Image.from_path(tmp_path / "missing.png")
    with pytest.raises(mal.ConfigError, match="http"):
        mal.Image.from_url("ftp://example.com/cat.png")
    with pytest.raises(mal.ConfigError, match="base64"):
        mal.Image.from_url("data:image/png;base64,@@@")
    with pytest.raises(mal.ConfigError, match="detail"):
        mal.Image.from_bytes(PNG, detail="ultra")  # type: ignore[arg-type]


def test_from_path_and_data_urls(tmp_path: Path) -> None:
    path = tmp_path / "cat.gif"
    path.write_bytes(GIF)
    assert mal.Image.from_path(path) == mal.Image.from_bytes(GIF)
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    image = mal.Image.from_url(url)
    assert image.data == PNG and image.media_type == "image/png"
    assert image.data_url == url


def test_base64_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = base64.b64encode

    def counting(data: bytes) -> bytes:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr("mal.images._base64.b64encode", counting)
    image = mal.Image.from_bytes(PNG)
    for provider in ("openai", "anthropic", "ollama"):
        for _ in range(3):  # as a retry or a fallback would
            get_protocol(provider).build_request(
                GenerateParams(model="m", prompt=[{"role": "user", "content": ["Hi", image]}])
            )
    assert calls == [len(PNG)]


def parts(provider: str, content: list[object]) -> dict[str, object]:
    request = get_protocol(provider).build_request(
        GenerateParams(model="m", prompt=[mal.Message(role="user", content=content)])
    )
    import json

    message: dict[str, object] = json.loads(request.body)["messages"][0]
    return message


def test_each_provider_gets_its_own_parts() -> None:
    image = mal.Image.from_bytes(PNG, detail="low")
    b64 = base64.b64encode(PNG).decode()
    assert parts("openai", ["What is this?", image])["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{b64}", "detail": "low"},
        },
    ]
    assert parts("anthropic", ["What is this?", image])["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}},
    ]
    assert parts("ollama", ["What", image, "is this?"]) == {
        "role": "user",
        "content": "What\nis this?",
        "images": [b64],
    }
    url = mal.Image.from_url("https://example.com/cat.png?sig=secret")
    assert parts("openai", [url])["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png?sig=secret"}}
    ]
    assert parts("anthropic", [url])["content"] == [
        {
            "type": "image",
            "source": {"type": "url", "url": "https://example.com/cat.png?sig=secret"},
        }
    ]
    with pytest.raises(mal.ConfigError, match="Ollama takes no image URLs"):
        parts("ollama", ["Hi", url])
    with pytest.raises(mal.ConfigError, match="content part"):
        parts("openai", ["Hi", 3])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_image_over_the_limit_is_refused(provider: str) -> None:
    big = mal.Image.from_bytes(PNG + b"\x00" * MAX_IMAGE_BYTES[provider])
    with pytest.raises(mal.ConfigError, match=f"{provider} takes images of at most"):
        parts(provider, ["Hi", big])


def test_anthropic_measures_its_limit_on_the_base64_text() -> None:
    # Anthropic's 5 MB holds for the base64 text as sent: 3 bytes become 4 characters,
    # so the largest image it takes is 3/4 of the limit.
    limit = MAX_IMAGE_BYTES["anthropic"]
    largest = limit // 4 * 3
    parts("anthropic", ["Hi", mal.Image.from_bytes(PNG + b"\x00" * (largest - len(PNG)))])
    over = mal.Image.from_bytes(PNG + b"\x00" * (largest - len(PNG) + 1))
    with pytest.raises(mal.ConfigError, match="as base64; anthropic takes images of at most"):
        parts("anthropic", ["Hi", over])
    parts("openai", ["Hi", over])  # OpenAI's limit is on the image itself


def test_bytes_never_show() -> None:
    secret = PNG + b"SECRETBYTES"
    image = mal.Image.from_bytes(secret)
    assert repr(image) == f"Image(image/png, {len(secret)} bytes)"
    assert base64.b64encode(secret).decode()[:20] not in repr(image)
    url = mal.Image.from_url("https://example.com/a.png?X-Amz-Signature=abc")
    assert "abc" not in repr(url) and "example.com/a.png" in repr(url)


def test_images_do_not_count_toward_the_streaming_threshold() -> None:
    big = mal.Image.from_bytes(PNG + b"\x00" * 100_000)
    prompt = [mal.Message(role="user", content=["Hi", big])]
    assert prompt_length(prompt) == 2
