"""Structured output: decoding a model's JSON answer into typed objects.

mal decodes and validates a structured answer with a reused
``msgspec.json.Decoder`` of the user's type (``mal.schema.OutputSchema``); the
peers validate with pydantic: openai-python's ``chat.completions.parse`` and
instructor call ``Model.model_validate_json``, pydantic-ai a ``TypeAdapter``'s
``validate_json``. This script times each on the same answers, valid ones of
a nested schema (an itinerary: a list of stops, each with a nested place,
an enum, optional fields and a list of tags), in alternation, and prints the
cost per answer and the ratio to mal's, paired per round. It also times
building the schema once per type (mal's ``OutputSchema.of`` on a new type:
``msgspec.json.schema`` and the strict form for OpenAI, against pydantic's
``model_json_schema``), which a program pays once per type.

Contenders (each checks the decoded value of every answer):

* ``mal OutputSchema.decode``: msgspec, into ``msgspec.Struct`` types;
* ``json.loads + msgspec.convert``: for scale, what decoding to dicts first costs;
* ``pydantic model_validate_json`` and ``pydantic TypeAdapter.validate_json``
  (skipped when pydantic is not installed).

    python benchmarks/structured.py [--answers 2000] [--stops 8] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import enum
import gc
import json
import random
import time
from collections.abc import Callable
from typing import Any

import _common
import msgspec

from mal.schema import OutputSchema

MAL = "mal OutputSchema.decode"


class Kind(enum.Enum):
    MUSEUM = "museum"
    PARK = "park"
    FOOD = "food"


class Place(msgspec.Struct):
    name: str
    city: str
    lat: float
    lon: float


class Stop(msgspec.Struct):
    place: Place
    kind: Kind
    minutes: int
    tags: list[str]
    note: str | None = None


class Itinerary(msgspec.Struct):
    title: str
    days: int
    stops: list[Stop]


def answers(n: int, stops: int, seed: int = 0) -> list[str]:
    """``n`` answers as a model writes them (spaces after the separators), as
    text: what a response's ``text`` is."""
    rng = random.Random(seed)
    words = ["old", "town", "river", "garden", "market", "hill", "museum", "café", "東京"]
    out = []
    for i in range(n):
        value = {
            "title": f"Trip {i}: " + " ".join(rng.choices(words, k=3)),
            "days": rng.randint(1, 9),
            "stops": [
                {
                    "place": {
                        "name": " ".join(rng.choices(words, k=2)).title(),
                        "city": rng.choice(["Kyoto", "Lisboa", "Zürich", "Oslo"]),
                        "lat": round(rng.uniform(-90, 90), 5),
                        "lon": round(rng.uniform(-180, 180), 5),
                    },
                    "kind": rng.choice([k.value for k in Kind]),
                    "minutes": rng.randint(10, 240),
                    "tags": rng.choices(words, k=rng.randint(0, 4)),
                    "note": None if rng.random() < 0.5 else "book ahead",
                }
                for _ in range(stops)
            ],
        }
        out.append(json.dumps(value, ensure_ascii=False))
    return out


def expected_of(data: list[str]) -> list[Any]:
    """What every contender must give: the answers as plain data."""
    return [json.loads(d) for d in data]


# --------------------------------------------------------------------------- contenders


def mal_decode() -> Callable[[list[str]], list[Any]]:
    schema = OutputSchema.of(Itinerary)

    def run(data: list[str]) -> list[Any]:
        decode = schema.decode
        return [decode(d) for d in data]

    return run


def loads_convert() -> Callable[[list[str]], list[Any]]:
    def run(data: list[str]) -> list[Any]:
        return [msgspec.convert(json.loads(d), Itinerary) for d in data]

    return run


def pydantic_models() -> Any:
    import pydantic

    class PPlace(pydantic.BaseModel):
        name: str
        city: str
        lat: float
        lon: float

    class PStop(pydantic.BaseModel):
        place: PPlace
        kind: Kind
        minutes: int
        tags: list[str]
        note: str | None = None

    class PItinerary(pydantic.BaseModel):
        title: str
        days: int
        stops: list[PStop]

    return pydantic, PItinerary


def pydantic_validate_json() -> Callable[[list[str]], list[Any]]:
    _, model = pydantic_models()

    def run(data: list[str]) -> list[Any]:
        validate = model.model_validate_json
        return [validate(d) for d in data]

    return run


def pydantic_type_adapter() -> Callable[[list[str]], list[Any]]:
    pydantic, model = pydantic_models()
    adapter = pydantic.TypeAdapter(model)

    def run(data: list[str]) -> list[Any]:
        validate = adapter.validate_json
        return [validate(d) for d in data]

    return run


CONTENDERS: dict[str, Callable[[], Callable[[list[str]], list[Any]]]] = {
    MAL: mal_decode,
    "json.loads + msgspec.convert": loads_convert,
    "pydantic model_validate_json": pydantic_validate_json,
    "pydantic TypeAdapter.validate_json": pydantic_type_adapter,
}


def as_plain(value: Any) -> Any:
    """A decoded answer as plain data, whichever library made it."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return msgspec.to_builtins(value)


# --------------------------------------------------------------------------- schema building


def schema_build_mal() -> float:
    """Seconds to build mal's schema of a new type (the cache would hide it)."""
    new = msgspec.defstruct(
        "Itinerary", [("title", str), ("days", int), ("stops", list[Stop])], module=__name__
    )
    start = time.perf_counter()
    OutputSchema.of(new)
    return time.perf_counter() - start


def schema_build_pydantic() -> float:
    start = time.perf_counter()
    _, model = pydantic_models()  # defining the classes is part of pydantic's cost
    model.model_json_schema()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- measuring


def timed(run: Callable[[list[str]], list[Any]], data: list[str]) -> tuple[float, list[Any]]:
    gc.collect()
    start = time.process_time()
    out = run(data)
    return time.process_time() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answers", type=int, default=2000, help="answers per round (2000)")
    ap.add_argument("--stops", type=int, default=8, help="stops per itinerary (8)")
    ap.add_argument("--repeat", type=int, default=7, help="alternating rounds (7)")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = ap.parse_args()

    data = answers(args.answers, args.stops)
    expected = expected_of(data)
    runs: dict[str, Callable[[list[str]], list[Any]]] = {}
    notes = []
    for name, make in CONTENDERS.items():
        try:
            runs[name] = make()
        except ImportError as exc:
            notes.append(f"{name}: {exc.name} is not installed")
    # Warm-up, and every contender's answers checked once.
    for name, run in runs.items():
        _, out = timed(run, data)
        if [as_plain(v) for v in out] != expected:
            raise SystemExit(f"{name}: wrong values")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            seconds, out = timed(run, data)
            if len(out) != len(data):
                raise SystemExit(f"{name}: wrong number of values")
            times[name].append(seconds / len(data) * 1e6)
    builds: dict[str, list[float]] = {"mal": []}
    if "pydantic model_validate_json" in runs:
        builds["pydantic"] = []
    for _ in range(args.repeat):
        builds["mal"].append(schema_build_mal() * 1e6)
        if "pydantic" in builds:
            builds["pydantic"].append(schema_build_pydantic() * 1e6)

    size = sum(len(d.encode()) for d in data) / len(data)
    print(
        f"# Structured output: {args.answers} answers of {size:.0f} bytes "
        f"({args.stops} stops each), {args.repeat} alternating rounds\n\n"
        "µs per answer (CPU time), median (min-max); × mal is the ratio to mal's time "
        "in the same round.\n"
    )
    rows = []
    result: dict[str, Any] = {}
    for name, values in times.items():
        ratio = _common.paired_ratios(values, times[MAL])
        summary = _common.summarize(values)
        result[name] = {"us_per_answer": values, "summary": summary, "ratio_to_mal": ratio}
        label = f"**{name}**" if name == MAL else name
        rows.append([label, _common.fmt(summary, 2), _common.fmt(ratio, 2, suffix="x")])
    print(_common.md_table(["contender", "µs/answer", "× mal"], rows))
    for note in notes:
        print(f"\n(skipped: {note})")
    print("\n## Building the schema of a new type, once (µs)\n")
    rows = [[name, _common.fmt(_common.summarize(v), 0)] for name, v in builds.items()]
    print(_common.md_table(["library", "µs"], rows))
    if args.json:
        _common.write_json(
            args.json,
            {
                "benchmark": "structured",
                "answers": args.answers,
                "stops": args.stops,
                "repeat": args.repeat,
                "bytes_per_answer": size,
                "results": result,
                "schema_build_us": builds,
                "notes": notes,
            },
        )


if __name__ == "__main__":
    main()
