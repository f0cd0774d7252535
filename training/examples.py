"""The labeled example: one raw receipt string with the answer the model should give."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from model.prompt import build_prompt, format_answer
from schemas.taxonomy import Taxonomy


@dataclass(frozen=True, slots=True)
class LabeledExample:
    raw_name: str
    normalized_name: str
    product: str
    brand: str | None
    category: str  # taxonomy id

    def prompt(self) -> str:
        return build_prompt(self.raw_name)

    def answer(self, taxonomy: Taxonomy) -> str:
        return format_answer(self.normalized_name, self.product, self.brand, taxonomy.by_id(self.category).name)


def write_jsonl(path: Path, examples: Iterable[LabeledExample]) -> int:
    count = 0
    with Path(path).open("wb") as out:
        for example in examples:
            out.write(orjson.dumps(asdict(example)) + b"\n")
            count += 1
    return count


def read_jsonl(path: Path) -> Iterator[LabeledExample]:
    with Path(path).open("rb") as source:
        for line in source:
            if line.strip():
                record = orjson.loads(line)
                yield LabeledExample(
                    raw_name=record["raw_name"],
                    normalized_name=record["normalized_name"],
                    product=record["product"],
                    brand=None if record.get("brand") in (None, "", "-") else record["brand"],
                    category=record["category"],
                )
