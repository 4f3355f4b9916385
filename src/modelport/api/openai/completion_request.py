"""The bodies of ``POST /v1/chat/completions`` and ``POST /v1/completions``, checked field
by field with messages that say what to send instead.

OpenAI's fields: ``model`` (a ModelPort reference), ``messages`` or ``prompt``,
``max_tokens`` (chat also ``max_completion_tokens``), ``temperature``, ``top_p``,
``seed``, ``stop``, ``n``, ``stream`` and ``stream_options.include_usage``. Fields that
would change the answer in ways ModelPort does not implement (log probabilities, tools,
penalties, ...) are refused rather than silently ignored; harmless ones (``user``,
``metadata``...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelport.errors import InvalidInputError
from modelport.registry.references import Reference, parse_reference

MAX_N = 16
"""Choices per prompt."""
MAX_PROMPTS = 32
"""Prompts per ``/v1/completions`` request."""
MAX_CHOICES = 64
"""Choices per request, all prompts together."""
MAX_STOPS = 4
MAX_STOP_CHARS = 1000
MAX_MESSAGES = 4096
ROLES = ("system", "developer", "user", "assistant", "tool")

OFF: tuple[Any, ...] = (None, False, 0, 0.0, "", [], {})
UNSUPPORTED: dict[str, tuple[str, tuple[Any, ...]]] = {
    "logprobs": ("log probabilities", OFF),
    "top_logprobs": ("log probabilities", OFF),
    "echo": ("echoing the prompt", OFF),
    "suffix": ("suffixes (insertion)", OFF),
    "best_of": ("best_of", (None, 1)),
    "tools": ("tools", OFF),
    "functions": ("function calling", OFF),
    "logit_bias": ("logit_bias", OFF),
    "presence_penalty": ("presence_penalty", OFF),
    "frequency_penalty": ("frequency_penalty", OFF),
    "response_format": ("response formats other than text", (None, {"type": "text"})),
}
"""Fields refused unless left out or set to a value that changes nothing."""


@dataclass(frozen=True)
class GenerationRequest:
    """What both endpoints take; ``prompts`` for completions, ``messages`` for chat."""

    model: str
    reference: Reference
    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]
    n: int
    stream: bool
    include_usage: bool
    prompts: tuple[str, ...] = ()
    messages: tuple[dict[str, str], ...] = ()


def parse_chat_request(document: dict[str, Any]) -> GenerationRequest:
    max_tokens = _max_tokens(document, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _max_tokens(document, "max_tokens")
    return _common(document, max_tokens, messages=_messages(document.get("messages")))


def parse_completion_request(document: dict[str, Any]) -> GenerationRequest:
    prompts = _prompts(document.get("prompt"))
    request = _common(document, _max_tokens(document, "max_tokens"), prompts=prompts)
    if len(prompts) * request.n > MAX_CHOICES:
        raise InvalidInputError(
            f"{len(prompts)} prompts with n={request.n} make {len(prompts) * request.n} "
            f"choices; ask for at most {MAX_CHOICES} per request"
        )
    return request


def _common(document: dict[str, Any], max_tokens: int | None, **texts: Any) -> GenerationRequest:
    for name, (feature, neutral) in UNSUPPORTED.items():
        value = document.get(name)
        if not any(value == off and type(value) is type(off) for off in neutral):
            raise InvalidInputError(
                f"'{name}' is not supported: ModelPort does not implement {feature}; "
                "leave the field out"
            )
    model = document.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInputError(
            "'model' is required: the name of a text-generation model in ModelPort (name, "
            "name@alias or name@3)"
        )
    stream = _flag(document, "stream")
    options = document.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise InvalidInputError("'stream_options' must be an object, and only with stream=true")
    return GenerationRequest(
        model=model,
        reference=parse_reference(model),
        max_tokens=max_tokens,
        temperature=_number(document, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(document, "top_p", 1.0, 0.0, 1.0),
        seed=_seed(document.get("seed")),
        stop=_stop(document.get("stop")),
        n=_n(document.get("n")),
        stream=stream,
        include_usage=_flag(options or {}, "include_usage"),
        **{key: tuple(value) for key, value in texts.items()},
    )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidInputError(
            '\'messages\' is required: a list of {"role": "user", "content": "..."} objects'
        )
    if len(value) > MAX_MESSAGES:
        raise InvalidInputError(f"'messages' has {len(value)} items; send at most {MAX_MESSAGES}")
    messages = []
    for index, message in enumerate(value):
        where = f"'messages[{index}]'"
        if not isinstance(message, dict):
            raise InvalidInputError(f"{where} must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidInputError(
                f"{where}.role must be one of {', '.join(ROLES)}, not {str(role)[:40]!r}"
            )
        # Chat templates know "system"; OpenAI's newer "developer" role means the same.
        role = "system" if role == "developer" else role
        messages.append({"role": role, "content": _content(message.get("content"), where)})
    return messages


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidInputError(
                    f"{where}.content may hold only text parts "
                    '({"type": "text", "text": "..."}); this model reads text only'
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidInputError(f"{where}.content has a text part without a 'text' string")
            texts.append(text)
        return "".join(texts)
    raise InvalidInputError(f"{where}.content must be a string or a list of text parts")


def _prompts(value: Any) -> list[str]:
    prompts = value if isinstance(value, list) else [value]
    if not prompts or len(prompts) > MAX_PROMPTS:
        raise InvalidInputError(
            f"'prompt' must be a string or a list of 1 to {MAX_PROMPTS} strings"
        )
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, int | list) and not isinstance(prompt, bool):
            raise InvalidInputError(
                "'prompt' holds token ids; ModelPort takes the prompt as text: send a string "
                "(or a list of strings)"
            )
        if not isinstance(prompt, str):
            where = "'prompt'" if prompts is not value else f"'prompt[{index}]'"
            raise InvalidInputError(f"{where} must be a string (required)")
    return prompts


def _max_tokens(document: dict[str, Any], name: str) -> int | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(
            f"'{name}' must be a positive integer (the most tokens to generate), not "
            f"{str(value)[:40]}"
        )
    return value


def _number(document: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = document.get(name)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInputError(f"'{name}' must be a number from {low:g} to {high:g}")
    return float(value)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= 2**63:
        raise InvalidInputError("'seed' must be an integer (64-bit)")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > MAX_STOPS:
        raise InvalidInputError(f"'stop' must be a string or a list of at most {MAX_STOPS} strings")
    for stop in stops:
        if not isinstance(stop, str) or not stop or len(stop) > MAX_STOP_CHARS:
            raise InvalidInputError(
                f"each 'stop' string must be text of 1 to {MAX_STOP_CHARS} characters"
            )
    return tuple(stops)


def _n(value: Any) -> int:
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_N:
        raise InvalidInputError(f"'n' must be an integer from 1 to {MAX_N} (choices to generate)")
    return value


def _flag(document: dict[str, Any], name: str) -> bool:
    value = document.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInputError(f"'{name}' must be true or false")
    return value
