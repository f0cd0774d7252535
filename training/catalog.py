"""The product catalog kept as data (training/catalog/products.tsv), loaded and validated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.taxonomy import Taxonomy, load_taxonomy

CATALOG_PATH = Path(__file__).with_name("catalog") / "products.tsv"
BY_WEIGHT = "вес"
NO_BRAND = "-"


class CatalogError(ValueError):
    """A catalog line that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class ProductType:
    category: str
    product: str
    abbreviations: tuple[str, ...]
    sizes: tuple[str, ...]
    variants: tuple[str, ...]
    brands: tuple[str, ...]  # empty: always unbranded

    @property
    def by_weight(self) -> bool:
        return BY_WEIGHT in self.sizes


def _split(field: str, separator: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in field.split(separator) if part.strip()))


def load_catalog(path: Path = CATALOG_PATH, taxonomy: Taxonomy | None = None) -> list[ProductType]:
    taxonomy = taxonomy or load_taxonomy()
    known = set(taxonomy.ids)
    products: list[ProductType] = []
    seen: set[str] = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{path}:{number}"
        if len(fields) != 6:
            raise CatalogError(f"{where}: expected 6 tab-separated fields, found {len(fields)}")
        category, product, abbreviations, sizes, variants, brands = (f.strip() for f in fields)
        if category not in known:
            raise CatalogError(f"{where}: category {category!r} is not in taxonomy {taxonomy.version}")
        if not product or product in seen:
            raise CatalogError(f"{where}: product {product!r} is empty or listed twice")
        seen.add(product)
        entry = ProductType(
            category=category,
            product=product,
            abbreviations=_split(abbreviations, "|"),
            sizes=_split(sizes, ";"),
            variants=_split(variants, ";"),
            brands=tuple(b for b in _split(brands, ";") if b != NO_BRAND),
        )
        if not entry.abbreviations or not entry.sizes or not entry.variants:
            raise CatalogError(f"{where}: abbreviations, sizes and variants must each have at least one value")
        products.append(entry)
    return products


def all_brands(products: list[ProductType]) -> set[str]:
    return {brand for product in products for brand in product.brands}
