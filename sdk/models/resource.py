"""docker-py style Model/Collection bases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdk.engine import Engine


class Model:
    """A resource: raw ``attrs`` (Docker's inspect JSON), ``id``, ``short_id``, ``reload()``."""

    id_attribute = "Id"

    def __init__(self, attrs: dict[str, Any], engine: Engine, collection: Any) -> None:
        self.attrs = attrs
        self.engine = engine
        self.collection = collection

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.short_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.id == self.id

    def __hash__(self) -> int:
        return hash(f"{type(self).__name__}:{self.id}")

    @property
    def id(self) -> str:
        return str(self.attrs.get(self.id_attribute))

    @property
    def short_id(self) -> str:
        value = self.id
        return value[7:19] if value.startswith("sha256:") else value[:12]

    def reload(self) -> None:
        self.attrs = self.collection.get(self.id).attrs


class Collection:
    model: type[Model] = Model

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"'{type(self).__name__}' object is not callable: use "
                        f"engine.{type(self).__name__.replace('Collection', '').lower()}s"
                        ".get/list/create/...")

    def prepare_model(self, attrs: dict[str, Any]) -> Any:
        return self.model(attrs, self.engine, self)
