"""Items as shops and newsrooms have them: records with categories, labels, visibility and
availability (:mod:`.records`), the catalogue that applies them at once (:mod:`.catalog`), and
new items made recommendable within seconds (:mod:`.fresh`). Pure."""

from .catalog import Catalog, ItemFilter, normalize_title
from .records import ItemRecord, parse_item_record

__all__ = ["Catalog", "ItemFilter", "ItemRecord", "normalize_title", "parse_item_record"]
