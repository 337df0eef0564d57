"""Token prices (``prices.toml``, user-editable) and token/cost estimates for vision-LLM calls."""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from connote import toml_files

USER_PRICES = Path("~/.config/connote/prices.toml")


@dataclass(frozen=True)
class Price:
    model: str  # the table entry that matched
    input: float  # USD per 1M input tokens
    output: float  # USD per 1M output tokens
    batch_discount: float = 0.5
    image_base: int = 85
    image_tile: int = 170
    expected_output_tokens: int = 150

    def cost(self, input_tokens: int | None, output_tokens: int | None, *, batch: bool = False) -> float:
        usd = ((input_tokens or 0) * self.input + (output_tokens or 0) * self.output) / 1e6
        return usd * (self.batch_discount if batch else 1.0)


def _merge(base: dict, extra: dict) -> dict:
    out = {
        "defaults": {**base.get("defaults", {}), **extra.get("defaults", {})},
        "models": {**base.get("models", {})},
    }
    for name, entry in extra.get("models", {}).items():
        out["models"][name] = {**out["models"].get(name, {}), **entry}
    return out


#: Price entries that are numbers: (low, high, whole); every other entry is refused by price_for's reader.
_NUMBERS = {
    "input": (0, None, False),  # USD per 1M tokens
    "output": (0, None, False),
    "batch_discount": (0, 1, False),
    "image_base": (0, None, True),
    "image_tile": (0, None, True),
    "expected_output_tokens": (1, None, True),
}


def check_prices(table: dict, source: str) -> dict:
    """``table`` when every price in it is a finite number in range; else a one-line error naming the file
    and the key (a negative or NaN price would make a budget meaningless)."""
    from connote import numbers
    from connote.errors import UserError

    sections = [("defaults", table.get("defaults", {}))]
    models = table.get("models", {})
    if not isinstance(models, dict):
        raise UserError(f'{source}: [models] must be a table of models, e.g. [models."gpt-4o"]')
    sections += [(f'models."{name}"', entry) for name, entry in models.items()]
    for where, entry in sections:
        if not isinstance(entry, dict):
            raise UserError(f"{source}: [{where}] must be a table of prices, not {entry!r}")
        for key, value in entry.items():
            if key not in _NUMBERS:
                continue
            low, high, is_whole = _NUMBERS[key]
            what = f"{source}: [{where}] {key}"
            if is_whole:
                numbers.whole(value, what, low=low, high=high)
            else:
                numbers.real(value, what, low=low, high=high)
    return table


def _load_toml(path: Path) -> dict:
    return check_prices(toml_files.read_toml(path, "price file"), str(path))


@functools.lru_cache(maxsize=8)
def _table(env_path: str | None) -> dict:
    table = toml_files.loads(resources.files("connote.describers").joinpath("prices.toml").read_text("utf-8"))
    user = Path(env_path) if env_path else USER_PRICES.expanduser()
    if env_path and not user.is_file():
        from connote.errors import UserError

        raise UserError(f"CONNOTE_PRICES={env_path}: file not found")
    if user.is_file():
        table = _merge(table, _load_toml(user))
    return table


def load_table() -> dict:
    return _table(os.environ.get("CONNOTE_PRICES") or None)


def price_for(model: str | None) -> Price | None:
    """The price of a model (exact name, else the longest matching prefix), or None when unknown."""
    if not model:
        return None
    table = load_table()
    models = table.get("models", {})
    name = model if model in models else None
    if name is None:
        prefixes = [m for m in models if model.startswith(m)]
        name = max(prefixes, key=len) if prefixes else None
    if name is None:
        return None
    entry = {**table.get("defaults", {}), **models[name]}
    return Price(
        model=name,
        input=float(entry.get("input", 0.0)),
        output=float(entry.get("output", 0.0)),
        batch_discount=float(entry.get("batch_discount", 0.5)),
        image_base=int(entry.get("image_base", 85)),
        image_tile=int(entry.get("image_tile", 170)),
        expected_output_tokens=int(entry.get("expected_output_tokens", 150)),
    )


def image_tokens(width: int, height: int, detail: str, *, base: int = 85, tile: int = 170) -> int:
    """OpenAI's image token count: 'low' = base; 'high'/'auto' = base + tile per 512-px tile after scaling."""
    if detail == "low":
        return base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def text_tokens(text: str | None) -> int:
    """A rough token count (about 4 characters per token)."""
    return math.ceil(len(text or "") / 4)
