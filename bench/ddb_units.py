"""What a request costs in the units AWS bills, computed from sizes by the services' documented
rules (used by bench/local_aws_timed.py's accounting and bench/cost.py's storage figures).

DynamoDB (Developer Guide, "DynamoDB read and write operations", "Item sizes", "Global secondary
indexes: provisioned throughput considerations"):
- item size: the UTF-8 length of every attribute name plus the size of its value (a string its
  UTF-8 length, a number (significant digits / 2) + 1 bytes rounded up, a binary its length,
  a boolean or null 1 byte, a list or map 3 bytes plus 1 byte per element plus the elements);
- a write (PutItem, UpdateItem, DeleteItem) costs 1 write unit per started KB of the larger of
  the item before and after it (at least 1); a conditional write whose condition fails costs the
  same on the existing item (at least 1); each item a `TransactWriteItems` writes (or checks)
  costs twice that ("Amazon DynamoDB transactions: capacity management");
- every global secondary index a write touches costs its own write units: an entry put or
  deleted, 1 per started KB of the entry; an entry whose index key changed, a delete and a put;
  an entry whose projected attributes changed, one write; an entry unchanged or absent, nothing;
- a read costs 1 read unit per started 4 KB of the item (a missing item counts as 0 bytes, still
  1 unit), half of that when eventually consistent; a query sums the items it reads, then rounds.
Storage: the item's size plus 100 bytes per item, and per index entry its projected size plus
100 bytes.
"""

import base64
import math

KB = 1024
READ_UNIT_BYTES = 4 * KB
STORAGE_OVERHEAD = 100


def number_size(text):
    digits = text.strip().lstrip("+-")
    if "e" in digits.lower():
        digits = digits.lower().split("e", 1)[0]
    digits = digits.replace(".", "").lstrip("0").rstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def value_size(value):
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return len(base64.b64decode(inner)) if isinstance(inner, str) else len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "NS":
        return sum(number_size(v) for v in inner)
    if kind == "BS":
        return sum(len(base64.b64decode(v)) for v in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item):
    """Bytes of an item in DynamoDB's wire shape ({"name": {"S": "..."}}); 0 for None."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size):
    return max(1, math.ceil(size / KB))


def read_units(size, consistent):
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units if consistent else units / 2


class Schema:
    """A table's key and global secondary indexes, from DescribeTable's answer."""

    def __init__(self, description):
        table = description["Table"]
        self.name = table["TableName"]
        self.keys = [k["AttributeName"] for k in table["KeySchema"]]
        self.indexes = []
        for index in table.get("GlobalSecondaryIndexes", []):
            keys = [k["AttributeName"] for k in index["KeySchema"]]
            projection = index.get("Projection", {})
            kind = projection.get("ProjectionType", "ALL")
            extra = projection.get("NonKeyAttributes", []) if kind == "INCLUDE" else []
            self.indexes.append((index["IndexName"], keys, kind, extra))

    def key_of(self, item):
        return {name: item[name] for name in self.keys if name in item}

    def entry(self, index, item):
        """The index entry `item` has in `index` (None when an index key is missing)."""
        _, keys, kind, extra = index
        if not item or any(k not in item for k in keys):
            return None
        if kind == "ALL":
            return dict(item)
        names = set(self.keys) | set(keys) | set(extra)
        return {k: v for k, v in item.items() if k in names}

    def index_write_units(self, before, after):
        """Write units every index takes for an item going from `before` to `after`."""
        units = {}
        for index in self.indexes:
            name, keys = index[0], index[1]
            old, new = self.entry(index, before), self.entry(index, after)
            if old is None and new is None or old == new:
                continue
            if old is None:
                cost = write_units(item_size(new))
            elif new is None:
                cost = write_units(item_size(old))
            elif any(old[k] != new[k] for k in keys):
                cost = write_units(item_size(old)) + write_units(item_size(new))
            else:
                cost = write_units(max(item_size(old), item_size(new)))
            units[name] = cost
        return units

    def storage_bytes(self, item):
        """Bytes the item occupies, its index entries included."""
        total = item_size(item) + STORAGE_OVERHEAD
        for index in self.indexes:
            entry = self.entry(index, item)
            if entry is not None:
                total += item_size(entry) + STORAGE_OVERHEAD
        return total


def chunks_64k(size):
    """SQS and EventBridge bill every started 64 KB of a payload as one request or event."""
    return max(1, math.ceil(size / (64 * KB)))


def eventbridge_entry_size(entry):
    """An entry's size as EventBridge bills it (PutEvents entry size calculation)."""
    size = 14 if entry.get("Time") else 0
    for field in ("Source", "DetailType", "Detail"):
        if entry.get(field):
            size += len(str(entry[field]).encode())
    for resource in entry.get("Resources", []) or []:
        size += len(resource.encode())
    return size
