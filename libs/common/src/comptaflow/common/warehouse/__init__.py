"""The analytical warehouse: client (`Warehouse`), schema and migrations. Read queries live in `reads`."""

from comptaflow.common.warehouse.client import Warehouse, WarehouseError

__all__ = ["Warehouse", "WarehouseError"]
