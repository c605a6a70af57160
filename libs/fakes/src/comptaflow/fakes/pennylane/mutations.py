"""Changes made after start-up, each at the fake clock's "now", each leaving the books balanced.

- `mutate(...)`: random changes across the changelog resources. An insert makes a coherent record (an
  invoice with its lines and entry, a bank movement with its entry, an OD entry for ledger lines); an
  update edits master data, pays an open invoice (a lettered transaction), relabels a transaction, or
  changes a whole OD entry (both lines' amount, or every line's label); a delete removes a record nothing
  refers to, an invoice with its lines and entry, a transaction with its entry, or a whole OD entry.
- `create`, `update`, `delete`: one targeted change of any table; `fields` use the API's scalar names
  and `<reference>_id` for references. A ledger line may only change in ways that keep its entry
  balanced (else 422 "Entry lines are not balanced", as Pennylane answers); `ledger_entries` accepts
  `lines: [{ledger_account_id | number, debit, credit, label}]` to post or replace a whole entry.

Only the changelog resources write events; ledger entries, accounts, journals, bank accounts, fiscal
years and categories change silently, as in Pennylane (their lines' events say when an entry changed).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from comptaflow.fakes.pennylane import chart
from comptaflow.fakes.pennylane.books import Books
from comptaflow.fakes.pennylane.builder import Posting
from comptaflow.fakes.pennylane.data import edit
from comptaflow.fakes.pennylane.formats import ZERO, parse_date, parse_timestamp
from comptaflow.fakes.pennylane.query import ApiError
from comptaflow.fakes.pennylane.store import CHANGELOG_RESOURCES, TABLES, Company, Row

UNBALANCED = "Entry lines are not balanced"
_FIXED = frozenset({"id", "created_at", "updated_at", "line_ids", "entry_id", "lettering_id"})


class AdminError(Exception):
    """A control-plane request that cannot be honoured (400 unless said otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _table(resource: str) -> str:
    if resource not in TABLES:
        raise AdminError(f"unknown resource {resource!r} (one of {', '.join(TABLES)})", 404)
    return resource


def changes_since(company: Company, seq: int) -> list[dict[str, Any]]:
    events = [(e.seq, resource, e) for resource, log in company.changelog.items() for e in log if e.seq > seq]
    return [{"resource": r, "id": e.id, "operation": e.operation} for _, r, e in sorted(events, key=lambda x: x[0])]


def last_seq(company: Company) -> int:
    return max((log[-1].seq for log in company.changelog.values() if log), default=0)


# --- random changes ---------------------------------------------------------------------------------


def mutate(
    company: Company,
    now: Callable[[], datetime],
    *,
    inserts: int = 0,
    updates: int = 0,
    deletes: int = 0,
    seed: int | None = None,
    resources: Sequence[str] = CHANGELOG_RESOURCES,
) -> list[dict[str, Any]]:
    """Random coherent changes; returns the changelog events they wrote, in order."""
    unknown = set(resources) - set(CHANGELOG_RESOURCES)
    if unknown or not resources:
        raise AdminError(f"resources must be among {', '.join(CHANGELOG_RESOURCES)}")
    rng = company.rng if seed is None else random.Random(f"{company.seed}:{seed}")  # noqa: S311 - seeded test data, not security
    build = Books(company, rng)
    before = last_seq(company)
    for operation, count in (("insert", inserts), ("update", updates), ("delete", deletes)):
        for _ in range(count):
            for resource in [rng.choice(list(resources)), *rng.sample(list(resources), len(resources))]:
                if _apply(build, operation, resource, now()):
                    break
    return changes_since(company, before)


def _apply(build: Books, operation: str, resource: str, at: datetime) -> bool:
    """One random change of `resource`; False when nothing of it can take that change."""
    company, rng, when = build.company, build.rng, at.date()
    if operation == "insert":
        _insert(build, resource, at, when)
        return True
    if operation == "update":
        return _update(build, resource, at, when)
    candidates = _deletable(company, resource)
    if not candidates:
        return False
    target = rng.choice(candidates)
    if resource in ("customer_invoices", "supplier_invoices"):
        build.delete_invoice(resource, target, at)
    elif resource == "transactions":
        build.delete_transaction(target, at)
    elif resource == "ledger_entry_lines":
        build.delete_entry(target, at)  # a whole OD entry: its lines go together, the books stay balanced
    else:
        company.delete(resource, target, at)
    return True


def _insert(build: Books, resource: str, at: datetime, when: date) -> None:
    company, rng = build.company, build.rng
    if resource in ("customers", "suppliers", "products"):
        getattr(build, resource.removesuffix("s"))(at)
    elif resource == "customer_invoices":
        customers = company.rows("customers") or {0: build.customer(at)}
        build.customer_invoice(at, when, rng.choice(list(customers.values())))
    elif resource == "supplier_invoices":
        suppliers = company.rows("suppliers") or {0: build.supplier(at)}
        build.supplier_invoice(at, when, rng.choice(list(suppliers.values())))
    elif resource == "transactions":
        build.bank_movement(at, when)
    else:
        build.misc_entry(at, when)


def _update(build: Books, resource: str, at: datetime, when: date) -> bool:  # noqa: PLR0912 - one branch per resource
    company, rng = build.company, build.rng
    rows = company.rows(resource)
    if resource in ("customers", "suppliers", "products"):
        if not rows:
            return False
        edit(build, resource, rows[rng.choice(list(rows))], at)
    elif resource in ("customer_invoices", "supplier_invoices"):
        if not rows:
            return False
        row = rows[rng.choice(list(rows))]
        open_ = not row.get("paid", True) if resource == "customer_invoices" else not row["reconciled"]
        if open_ and not row.get("draft") and not row.get("credit_note"):
            build.pay(resource, row, at, when)
        else:
            row["label"] = f"{row['label']} (modifiée)"
            company.touch(resource, row, at)
    elif resource == "transactions":
        if not rows:
            return False
        row = rows[rng.choice(list(rows))]
        row["label"] = f"{row['label']} REF{rng.randint(1000, 9999)}"
        company.touch(resource, row, at)
    else:
        entries = _misc_entries(company)
        if not entries:
            return False
        entry = company.rows("ledger_entries")[rng.choice(entries)]
        lines = build.entry_lines(entry)
        if len(lines) == 2:
            value = build.amount(10, 2000)
            for line in lines:
                line["debit"], line["credit"] = (value, ZERO) if line["debit"] else (ZERO, value)
        else:
            entry["label"] = f"{entry['label']} (corrigée)"
            for line in lines:
                line["label"] = entry["label"]
        entry["updated_at"] = at
        for line in lines:
            company.touch("ledger_entry_lines", line, at)
    return True


def _misc_entries(company: Company) -> list[int]:
    """OD entries: the ones no invoice or transaction stands behind."""
    misc = company.journal_ids.get(chart.MISC_JOURNAL[0])
    return [entry_id for entry_id, entry in company.rows("ledger_entries").items() if entry["journal_id"] == misc]


def _deletable(company: Company, resource: str) -> list[int]:  # noqa: PLR0911 - one rule per resource
    """Ids a random delete may take: records nothing refers to (whole OD entries for ledger lines)."""
    rows = company.rows(resource)
    if resource == "ledger_entry_lines":
        return _misc_entries(company)
    if resource in ("customers", "suppliers"):
        key = resource.removesuffix("s") + "_id"
        used = {
            row[key] for table in (f"{resource[:-1]}_invoices", "transactions") for row in company.rows(table).values()
        }
        return [row_id for row_id in rows if row_id not in used]
    if resource == "products":
        used = {line["product_id"] for line in company.rows("customer_invoice_lines").values()}
        return [row_id for row_id in rows if row_id not in used]
    if resource == "customer_invoices":
        credited = {row["credited_invoice_id"] for row in rows.values()}
        return [row_id for row_id, row in rows.items() if row_id not in credited and not row["paid"]]
    if resource == "supplier_invoices":
        return [row_id for row_id, row in rows.items() if not row["reconciled"]]
    if resource == "transactions":  # a payment stays: its invoice is paid and lettered with it
        return [row_id for row_id, row in rows.items() if row.get("matched_invoice_id") is None]
    return list(rows)


# --- targeted changes -------------------------------------------------------------------------------


def _convert(current: Any, value: Any, key: str) -> Any:
    try:
        if isinstance(current, Decimal):
            return Decimal(str(value))
        if isinstance(current, datetime) or (current is None and key.endswith("_at") and isinstance(value, str)):
            return parse_timestamp(value)
        if isinstance(current, date) or (current is None and key in ("date", "deadline", "due_date")):
            return parse_date(value) if isinstance(value, str) else value
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise AdminError(f"{key}: {exc}") from None
    return value


def _merge(row: Row, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if key in _FIXED or key not in row:
            raise AdminError(f"field {key!r} cannot be set on this resource")
        row[key] = _convert(row[key], value, key)


def create(company: Company, resource: str, fields: dict[str, Any], at: datetime) -> Row:
    """A new record of `resource`: generated defaults, then `fields` merged over them."""
    _table(resource)
    build = Books(company, company.rng)
    fields = dict(fields)
    when = parse_date(fields.pop("date")) if isinstance(fields.get("date"), str) else at.date()
    row = _create_default(build, resource, fields, at, when)
    if fields:
        _merge(row, fields)
    return row


def _create_default(  # noqa: PLR0911 - one return per table
    build: Books, resource: str, fields: dict[str, Any], at: datetime, when: date
) -> Row:
    company = build.company
    if resource in ("customers", "suppliers", "products"):
        if resource == "customers" and "customer_type" in fields:
            return build.customer(at, individual=fields.pop("customer_type") == "individual")
        maker: Callable[[datetime], Row] = getattr(build, resource.removesuffix("s"))
        return maker(at)
    if resource == "customer_invoices":
        customer = _pick(company, "customers", fields.pop("customer_id", None)) or build.customer(at)
        return build.customer_invoice(at, when, customer)
    if resource == "supplier_invoices":
        supplier = _pick(company, "suppliers", fields.pop("supplier_id", None)) or build.supplier(at)
        return build.supplier_invoice(at, when, supplier)
    if resource == "transactions":
        bank = _pick(company, "bank_accounts", fields.pop("bank_account_id", None))
        if "amount" not in fields:
            return build.bank_movement(at, when) if bank is None else _movement(build, bank, at, when, fields)
        return _movement(build, bank, at, when, fields)
    if resource == "ledger_entries":
        return _entry(build, fields, at, when)
    if resource == "ledger_accounts":
        return build.account(
            str(fields.pop("number", f"471{company.next_count('suspense'):03d}")), fields.pop("label", "Compte"), at
        )
    if resource == "journals":
        code = str(fields.pop("code", f"J{company.next_count('journal'):02d}"))
        return build.journal(code, fields.pop("label", f"Journal {code}"), fields.pop("type", "miscellaneous"), at)
    if resource == "bank_accounts":
        return build.bank_account(len(company.rows("bank_accounts")), at)
    if resource == "fiscal_years":
        year = when.year + 1
        return build.fiscal_year(date(year, 1, 1), date(year, 12, 31), "open", at)
    if resource == "categories":
        groups = sorted({row["category_group_id"] for row in company.rows("categories").values()})
        group = fields.pop("category_group_id", groups[0] if groups else company.new_id("categories"))
        return build.category(fields.pop("label", "Nouvelle catégorie"), group, at)
    raise ApiError.of(422, UNBALANCED)  # a ledger line alone cannot be posted: it would unbalance its entry


def _pick(company: Company, table: str, row_id: Any) -> Row | None:
    if row_id is None:
        return None
    row = company.get(table, row_id) if isinstance(row_id, int) else None
    if row is None:
        raise AdminError(f"no {table} with id {row_id!r}", 404)
    return row


def _movement(build: Books, bank: Row | None, at: datetime, when: date, fields: dict[str, Any]) -> Row:
    amount = _convert(ZERO, fields.pop("amount"), "amount")
    label = str(fields.pop("label", "VIR SEPA"))
    return build.transaction(at, when, amount, label, build.account_id("471000"), bank=bank)


def _postings(build: Books, lines: Any, label: str) -> list[Posting]:
    if not isinstance(lines, list) or not lines:
        raise AdminError("lines must be a non-empty array of {ledger_account_id | number, debit, credit, label}")
    postings: list[Posting] = []
    for line in lines:
        if not isinstance(line, dict):
            raise AdminError("every line is an object")
        account_id = line.get("ledger_account_id")
        if account_id is None:
            account_id = build.company.accounts_by_number.get(str(line.get("number")))
        if account_id not in build.company.rows("ledger_accounts"):
            raise AdminError(f"unknown ledger account in line {line!r}")
        debit = _convert(ZERO, line.get("debit", "0"), "debit")
        credit = _convert(ZERO, line.get("credit", "0"), "credit")
        postings.append((account_id, debit, credit, str(line.get("label", label)), ()))
    if sum(p[1] for p in postings) != sum(p[2] for p in postings):
        raise ApiError.of(422, UNBALANCED)
    return postings


def _entry(build: Books, fields: dict[str, Any], at: datetime, when: date) -> Row:
    if "lines" not in fields:
        return build.misc_entry(at, when)
    company = build.company
    label = str(fields.pop("label", "Écriture manuelle"))
    journal_id = fields.pop("journal_id", company.journal_ids[chart.MISC_JOURNAL[0]])
    if journal_id not in company.rows("journals"):
        raise AdminError(f"no journal with id {journal_id!r}", 404)
    postings = _postings(build, fields.pop("lines"), label)
    return build.post(journal_id, when, label, postings, at, piece=fields.pop("piece_number", None))


def update(company: Company, resource: str, row_id: int, fields: dict[str, Any], at: datetime) -> Row:
    row = company.get(_table(resource), row_id)
    if row is None:
        raise AdminError(f"no {resource} with id {row_id}", 404)
    build = Books(company, company.rng)
    if resource == "ledger_entries":
        return _update_entry(build, row, dict(fields), at)
    if resource == "ledger_entry_lines":
        entry = company.rows("ledger_entries")[row["entry_id"]]
        saved = dict(row)
        _merge(row, fields)
        if not _balanced(build, entry):
            row.clear()
            row.update(saved)
            raise ApiError.of(422, UNBALANCED)
    else:
        _merge(row, fields)
    company.touch(resource, row, at)
    return row


def _update_entry(build: Books, entry: Row, fields: dict[str, Any], at: datetime) -> Row:
    company = build.company
    lines = fields.pop("lines", None)
    if lines is not None:
        postings = _postings(build, lines, str(fields.get("label", entry["label"])))
        for line_id in list(entry["line_ids"]):
            company.delete("ledger_entry_lines", line_id, at)
        entry["line_ids"] = []
        _merge(entry, fields)
        for posting in postings:
            entry["line_ids"].append(build.post_line(entry, posting, at)["id"])
    else:
        _merge(entry, fields)
        for line in build.entry_lines(entry):
            line.update(date=entry["date"], journal_id=entry["journal_id"])
            company.touch("ledger_entry_lines", line, at)
    entry["updated_at"] = at
    return entry


def _balanced(build: Books, entry: Row) -> bool:
    lines = build.entry_lines(entry)
    return sum((line["debit"] for line in lines), ZERO) == sum((line["credit"] for line in lines), ZERO)


def delete(company: Company, resource: str, row_id: int, at: datetime) -> None:
    row = company.get(_table(resource), row_id)
    if row is None:
        raise AdminError(f"no {resource} with id {row_id}", 404)
    build = Books(company, company.rng)
    if resource in ("customer_invoices", "supplier_invoices"):
        build.delete_invoice(resource, row_id, at)
    elif resource == "transactions":
        build.delete_transaction(row_id, at)
    elif resource == "ledger_entries":
        build.delete_entry(row_id, at)
    elif resource == "ledger_entry_lines":
        entry = company.rows("ledger_entries")[row["entry_id"]]
        if row["debit"] != row["credit"]:
            raise ApiError.of(422, UNBALANCED)
        company.delete(resource, row_id, at)
        entry["line_ids"].remove(row_id)
        entry["updated_at"] = at
    else:
        company.delete(resource, row_id, at)
