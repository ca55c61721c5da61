"""Output types whose JSON schemas use keywords the providers' subsets
refuse: a tagged union (``discriminator``) and a plain Struct for a field
with a description beside its ``$ref``."""

from __future__ import annotations

import msgspec


class Point(msgspec.Struct):
    x: float
    y: float


class Circle(msgspec.Struct, tag="circle"):
    radius: float


class Square(msgspec.Struct, tag="square"):
    side: float
