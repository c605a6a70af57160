-- The tables of one tenant's Pennylane schema (`pennylane_<tenant>`), one per table of the catalogue
-- (`comptaflow.common.pennylane.tables`). Names are unqualified: `schema.migrate_tenant` runs each file
-- with `search_path` set to the tenant's schema (then pg_catalog) for the file's transaction.
--
-- Layout of every table:
--   keys       the primary key (`id`, or `(fiscal_year_id, number)`, `(fiscal_year_id, line_no)`) and the
--              plain columns the sync fills beside it (`invoice_id` of a line, the period of a trial
--              balance): `schema.KEYS` and `schema.EXTRA`;
--   item       the object exactly as the API sent it (for `fec`, the 18 fields of a line as written in
--              the file). It is the truth: the sync writes only keys, plain columns, item and synced_at;
--   synced_at  when the sync last wrote a different item;
--   the rest   typed projections of `item`, GENERATED ALWAYS … STORED: `numeric` for amounts, rates and
--              quantities (decimal strings), `date`, `timestamptz`, `boolean`, `bigint` ids, `<name>_id`
--              for a reference `{id, url}`, `<object>_<field>` for a field of a small nested object.
--              Arrays and `{url}` links stay in `item` only.
--
-- A new typed column is a new migration file (`0002_….sql`) that adds a generated column: PostgreSQL
-- computes it for every stored row as it adds it (rewriting the table under an exclusive lock), so
-- nothing is re-fetched. A projection is never edited in place: drop the column and add it again in a new
-- file. The top-level keys a new column reads go into `schema.REQUIRED_KEYS` (a test compares them with
-- the generation expressions): the sync refuses an item that lacks one, which would otherwise silently
-- project to NULL. A value that does not convert (a malformed date, an amount that is not a number) fails
-- the statement that writes it, with a DataError (SQLSTATE class 22).

-- Conversions. Generated columns need IMMUTABLE expressions, and PostgreSQL's text→date and
-- text→timestamptz casts are only STABLE: in general their result depends on DateStyle (is 01/02/2023 the
-- first of February or the second of January?), on TimeZone (a timestamp written without an offset) and
-- on the clock ('now', 'today'). The wrappers below cast only ISO-8601 text with all of its parts: a date
-- YYYY-MM-DD (or the FEC's YYYYMMDD), a timestamp with an explicit offset (Z or ±hh[:mm]). Such input
-- parses to the same value under every DateStyle and every TimeZone, which is what makes declaring them
-- IMMUTABLE sound. Any other text is refused (cast with a prefix that cannot parse, so the error is the
-- cast's own, naming the value) rather than read through the session's settings.
-- Bodies are SQL-standard (`RETURN`): parsed once, here, so the caller's search_path cannot change them.
-- None is STRICT: the planner inlines only a non-strict SQL function whose body it cannot prove strict,
-- and inlined they cost a fraction of a call per row (NULL in still gives NULL out: the CASE falls to a
-- cast of NULL).

CREATE FUNCTION iso_date(value text) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value ~ '^\d{4}-\d{2}-\d{2}$' THEN value::date
                ELSE ('not an ISO-8601 date: ' || value)::date END;

CREATE FUNCTION iso_timestamptz(value text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$'
                THEN value::timestamptz
                ELSE ('not an ISO-8601 timestamp with an offset: ' || value)::timestamptz END;

-- FEC fields (article A47 A-1 of the LPF): text as written, blank meaning absent.
CREATE FUNCTION fec_text(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NULLIF(btrim(value), '');

-- A FEC date is YYYYMMDD (ISO-8601's basic form: read as such under every DateStyle); blank is NULL.
CREATE FUNCTION fec_date(value text) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN btrim(value) = '' THEN NULL
                WHEN btrim(value) ~ '^\d{8}$' THEN btrim(value)::date
                ELSE ('not a FEC date (YYYYMMDD): ' || value)::date END;

-- A FEC amount has a decimal comma (a point is read too) and may group thousands with spaces (plain,
-- no-break U+00A0 or narrow no-break U+202F); blank is NULL. Only immutable functions: it is inlined.
CREATE FUNCTION fec_amount(value text) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN NULLIF(replace(translate(value, ' ' || chr(160) || chr(8239), ''), ',', '.'), '')::numeric;

-- Customers are a oneOf told apart by `customer_type`: vat_number and reg_no exist only on companies,
-- first_name and last_name only on individuals (NULL on the other kind).
CREATE TABLE customers (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    customer_type                   text GENERATED ALWAYS AS (item->>'customer_type') STORED,
    name                            text GENERATED ALWAYS AS (item->>'name') STORED,
    first_name                      text GENERATED ALWAYS AS (item->>'first_name') STORED,
    last_name                       text GENERATED ALWAYS AS (item->>'last_name') STORED,
    vat_number                      text GENERATED ALWAYS AS (item->>'vat_number') STORED,
    reg_no                          text GENERATED ALWAYS AS (item->>'reg_no') STORED,
    billing_iban                    text GENERATED ALWAYS AS (item->>'billing_iban') STORED,
    payment_conditions              text GENERATED ALWAYS AS (item->>'payment_conditions') STORED,
    recipient                       text GENERATED ALWAYS AS (item->>'recipient') STORED,
    phone                           text GENERATED ALWAYS AS (item->>'phone') STORED,
    reference                       text GENERATED ALWAYS AS (item->>'reference') STORED,
    notes                           text GENERATED ALWAYS AS (item->>'notes') STORED,
    ledger_account_id               bigint GENERATED ALWAYS AS ((item->'ledger_account'->>'id')::bigint) STORED,
    billing_address_postal_code     text GENERATED ALWAYS AS (item->'billing_address'->>'postal_code') STORED,
    billing_address_city            text GENERATED ALWAYS AS (item->'billing_address'->>'city') STORED,
    billing_address_country_alpha2  text GENERATED ALWAYS AS (item->'billing_address'->>'country_alpha2') STORED,
    external_reference              text GENERATED ALWAYS AS (item->>'external_reference') STORED,
    billing_language                text GENERATED ALWAYS AS (item->>'billing_language') STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

CREATE TABLE suppliers (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    name                            text GENERATED ALWAYS AS (item->>'name') STORED,
    establishment_no                text GENERATED ALWAYS AS (item->>'establishment_no') STORED,
    reg_no                          text GENERATED ALWAYS AS (item->>'reg_no') STORED,
    vat_number                      text GENERATED ALWAYS AS (item->>'vat_number') STORED,
    ledger_account_id               bigint GENERATED ALWAYS AS ((item->'ledger_account'->>'id')::bigint) STORED,
    iban                            text GENERATED ALWAYS AS (item->>'iban') STORED,
    postal_address_postal_code      text GENERATED ALWAYS AS (item->'postal_address'->>'postal_code') STORED,
    postal_address_city             text GENERATED ALWAYS AS (item->'postal_address'->>'city') STORED,
    postal_address_country_alpha2   text GENERATED ALWAYS AS (item->'postal_address'->>'country_alpha2') STORED,
    supplier_payment_method         text GENERATED ALWAYS AS (item->>'supplier_payment_method') STORED,
    supplier_due_date_delay         integer GENERATED ALWAYS AS ((item->>'supplier_due_date_delay')::integer) STORED,
    supplier_due_date_rule          text GENERATED ALWAYS AS (item->>'supplier_due_date_rule') STORED,
    external_reference              text GENERATED ALWAYS AS (item->>'external_reference') STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

CREATE TABLE products (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    description                     text GENERATED ALWAYS AS (item->>'description') STORED,
    external_reference              text GENERATED ALWAYS AS (item->>'external_reference') STORED,
    price_before_tax                numeric GENERATED ALWAYS AS ((item->>'price_before_tax')::numeric) STORED,
    vat_rate                        text GENERATED ALWAYS AS (item->>'vat_rate') STORED,
    price                           numeric GENERATED ALWAYS AS ((item->>'price')::numeric) STORED,
    unit                            text GENERATED ALWAYS AS (item->>'unit') STORED,
    currency                        text GENERATED ALWAYS AS (item->>'currency') STORED,
    reference                       text GENERATED ALWAYS AS (item->>'reference') STORED,
    ledger_account_id               bigint GENERATED ALWAYS AS ((item->'ledger_account'->>'id')::bigint) STORED,
    archived_at                     timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'archived_at')) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

CREATE TABLE customer_invoices (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    invoice_number                  text GENERATED ALWAYS AS (item->>'invoice_number') STORED,
    currency                        text GENERATED ALWAYS AS (item->>'currency') STORED,
    amount                          numeric GENERATED ALWAYS AS ((item->>'amount')::numeric) STORED,
    currency_amount                 numeric GENERATED ALWAYS AS ((item->>'currency_amount')::numeric) STORED,
    currency_amount_before_tax      numeric GENERATED ALWAYS AS ((item->>'currency_amount_before_tax')::numeric) STORED,
    exchange_rate                   numeric GENERATED ALWAYS AS ((item->>'exchange_rate')::numeric) STORED,
    date                            date GENERATED ALWAYS AS (iso_date(item->>'date')) STORED,
    deadline                        date GENERATED ALWAYS AS (iso_date(item->>'deadline')) STORED,
    currency_tax                    numeric GENERATED ALWAYS AS ((item->>'currency_tax')::numeric) STORED,
    tax                             numeric GENERATED ALWAYS AS ((item->>'tax')::numeric) STORED,
    language                        text GENERATED ALWAYS AS (item->>'language') STORED,
    paid                            boolean GENERATED ALWAYS AS ((item->>'paid')::boolean) STORED,
    status                          text GENERATED ALWAYS AS (item->>'status') STORED,
    discount_type                   text GENERATED ALWAYS AS (item->'discount'->>'type') STORED,
    discount_value                  numeric GENERATED ALWAYS AS ((item->'discount'->>'value')::numeric) STORED,
    ledger_entry_id                 bigint GENERATED ALWAYS AS ((item->'ledger_entry'->>'id')::bigint) STORED,
    public_file_url                 text GENERATED ALWAYS AS (item->>'public_file_url') STORED,
    filename                        text GENERATED ALWAYS AS (item->>'filename') STORED,
    remaining_amount_with_tax       numeric GENERATED ALWAYS AS ((item->>'remaining_amount_with_tax')::numeric) STORED,
    remaining_amount_without_tax    numeric GENERATED ALWAYS AS ((item->>'remaining_amount_without_tax')::numeric) STORED,
    draft                           boolean GENERATED ALWAYS AS ((item->>'draft')::boolean) STORED,
    special_mention                 text GENERATED ALWAYS AS (item->>'special_mention') STORED,
    customer_id                     bigint GENERATED ALWAYS AS ((item->'customer'->>'id')::bigint) STORED,
    pdf_invoice_free_text           text GENERATED ALWAYS AS (item->>'pdf_invoice_free_text') STORED,
    pdf_invoice_subject             text GENERATED ALWAYS AS (item->>'pdf_invoice_subject') STORED,
    pdf_description                 text GENERATED ALWAYS AS (item->>'pdf_description') STORED,
    billing_subscription_id         bigint GENERATED ALWAYS AS ((item->'billing_subscription'->>'id')::bigint) STORED,
    credited_invoice_id             bigint GENERATED ALWAYS AS ((item->'credited_invoice'->>'id')::bigint) STORED,
    customer_invoice_template_id    bigint GENERATED ALWAYS AS ((item->'customer_invoice_template'->>'id')::bigint) STORED,
    quote_id                        bigint GENERATED ALWAYS AS ((item->'quote'->>'id')::bigint) STORED,
    external_reference              text GENERATED ALWAYS AS (item->>'external_reference') STORED,
    e_invoicing_status              text GENERATED ALWAYS AS (item->'e_invoicing'->>'status') STORED,
    e_invoicing_reason              text GENERATED ALWAYS AS (item->'e_invoicing'->>'reason') STORED,
    archived_at                     timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'archived_at')) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX customer_invoices_date_idx ON customer_invoices (date);
CREATE INDEX customer_invoices_customer_id_idx ON customer_invoices (customer_id);

-- The lines of a customer invoice (`/customer_invoices/{id}/invoice_lines`): `invoice_id` is the parent's id.
CREATE TABLE customer_invoice_lines (
    id                              bigint PRIMARY KEY,
    invoice_id                      bigint NOT NULL,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    unit                            text GENERATED ALWAYS AS (item->>'unit') STORED,
    quantity                        numeric GENERATED ALWAYS AS ((item->>'quantity')::numeric) STORED,
    amount                          numeric GENERATED ALWAYS AS ((item->>'amount')::numeric) STORED,
    currency_amount                 numeric GENERATED ALWAYS AS ((item->>'currency_amount')::numeric) STORED,
    description                     text GENERATED ALWAYS AS (item->>'description') STORED,
    product_id                      bigint GENERATED ALWAYS AS ((item->'product'->>'id')::bigint) STORED,
    vat_rate                        text GENERATED ALWAYS AS (item->>'vat_rate') STORED,
    currency_amount_before_tax      numeric GENERATED ALWAYS AS ((item->>'currency_amount_before_tax')::numeric) STORED,
    currency_tax                    numeric GENERATED ALWAYS AS ((item->>'currency_tax')::numeric) STORED,
    tax                             numeric GENERATED ALWAYS AS ((item->>'tax')::numeric) STORED,
    raw_currency_unit_price         numeric GENERATED ALWAYS AS ((item->>'raw_currency_unit_price')::numeric) STORED,
    discount_type                   text GENERATED ALWAYS AS (item->'discount'->>'type') STORED,
    discount_value                  numeric GENERATED ALWAYS AS ((item->'discount'->>'value')::numeric) STORED,
    section_rank                    integer GENERATED ALWAYS AS ((item->>'section_rank')::integer) STORED,
    imputation_dates_start_date     date GENERATED ALWAYS AS (iso_date(item->'imputation_dates'->>'start_date')) STORED,
    imputation_dates_end_date       date GENERATED ALWAYS AS (iso_date(item->'imputation_dates'->>'end_date')) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX customer_invoice_lines_invoice_id_idx ON customer_invoice_lines (invoice_id);

CREATE TABLE supplier_invoices (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    invoice_number                  text GENERATED ALWAYS AS (item->>'invoice_number') STORED,
    currency                        text GENERATED ALWAYS AS (item->>'currency') STORED,
    amount                          numeric GENERATED ALWAYS AS ((item->>'amount')::numeric) STORED,
    currency_amount                 numeric GENERATED ALWAYS AS ((item->>'currency_amount')::numeric) STORED,
    currency_amount_before_tax      numeric GENERATED ALWAYS AS ((item->>'currency_amount_before_tax')::numeric) STORED,
    exchange_rate                   numeric GENERATED ALWAYS AS ((item->>'exchange_rate')::numeric) STORED,
    date                            date GENERATED ALWAYS AS (iso_date(item->>'date')) STORED,
    deadline                        date GENERATED ALWAYS AS (iso_date(item->>'deadline')) STORED,
    currency_tax                    numeric GENERATED ALWAYS AS ((item->>'currency_tax')::numeric) STORED,
    tax                             numeric GENERATED ALWAYS AS ((item->>'tax')::numeric) STORED,
    reconciled                      boolean GENERATED ALWAYS AS ((item->>'reconciled')::boolean) STORED,
    accounting_status               text GENERATED ALWAYS AS (item->>'accounting_status') STORED,
    filename                        text GENERATED ALWAYS AS (item->>'filename') STORED,
    public_file_url                 text GENERATED ALWAYS AS (item->>'public_file_url') STORED,
    remaining_amount_with_tax       numeric GENERATED ALWAYS AS ((item->>'remaining_amount_with_tax')::numeric) STORED,
    remaining_amount_without_tax    numeric GENERATED ALWAYS AS ((item->>'remaining_amount_without_tax')::numeric) STORED,
    ledger_entry_id                 bigint GENERATED ALWAYS AS ((item->'ledger_entry'->>'id')::bigint) STORED,
    supplier_id                     bigint GENERATED ALWAYS AS ((item->'supplier'->>'id')::bigint) STORED,
    payment_status                  text GENERATED ALWAYS AS (item->>'payment_status') STORED,
    external_reference              text GENERATED ALWAYS AS (item->>'external_reference') STORED,
    e_invoicing_status              text GENERATED ALWAYS AS (item->'e_invoicing'->>'status') STORED,
    e_invoicing_reason              text GENERATED ALWAYS AS (item->'e_invoicing'->>'reason') STORED,
    archived_at                     timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'archived_at')) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX supplier_invoices_date_idx ON supplier_invoices (date);
CREATE INDEX supplier_invoices_supplier_id_idx ON supplier_invoices (supplier_id);

-- The lines of a supplier invoice (`/supplier_invoices/{id}/invoice_lines`): `invoice_id` is the parent's id.
CREATE TABLE supplier_invoice_lines (
    id                              bigint PRIMARY KEY,
    invoice_id                      bigint NOT NULL,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    amount                          numeric GENERATED ALWAYS AS ((item->>'amount')::numeric) STORED,
    currency_amount                 numeric GENERATED ALWAYS AS ((item->>'currency_amount')::numeric) STORED,
    description                     text GENERATED ALWAYS AS (item->>'description') STORED,
    vat_rate                        text GENERATED ALWAYS AS (item->>'vat_rate') STORED,
    currency_amount_before_tax      numeric GENERATED ALWAYS AS ((item->>'currency_amount_before_tax')::numeric) STORED,
    currency_tax                    numeric GENERATED ALWAYS AS ((item->>'currency_tax')::numeric) STORED,
    tax                             numeric GENERATED ALWAYS AS ((item->>'tax')::numeric) STORED,
    imputation_dates_start_date     date GENERATED ALWAYS AS (iso_date(item->'imputation_dates'->>'start_date')) STORED,
    imputation_dates_end_date       date GENERATED ALWAYS AS (iso_date(item->'imputation_dates'->>'end_date')) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX supplier_invoice_lines_invoice_id_idx ON supplier_invoice_lines (invoice_id);

CREATE TABLE transactions (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    attachment_required             boolean GENERATED ALWAYS AS ((item->>'attachment_required')::boolean) STORED,
    date                            date GENERATED ALWAYS AS (iso_date(item->>'date')) STORED,
    outstanding_balance             numeric GENERATED ALWAYS AS ((item->>'outstanding_balance')::numeric) STORED,
    currency                        text GENERATED ALWAYS AS (item->>'currency') STORED,
    currency_amount                 numeric GENERATED ALWAYS AS ((item->>'currency_amount')::numeric) STORED,
    amount                          numeric GENERATED ALWAYS AS ((item->>'amount')::numeric) STORED,
    currency_fee                    numeric GENERATED ALWAYS AS ((item->>'currency_fee')::numeric) STORED,
    fee                             numeric GENERATED ALWAYS AS ((item->>'fee')::numeric) STORED,
    journal_id                      bigint GENERATED ALWAYS AS ((item->'journal'->>'id')::bigint) STORED,
    bank_account_id                 bigint GENERATED ALWAYS AS ((item->'bank_account'->>'id')::bigint) STORED,
    customer_id                     bigint GENERATED ALWAYS AS ((item->'customer'->>'id')::bigint) STORED,
    supplier_id                     bigint GENERATED ALWAYS AS ((item->'supplier'->>'id')::bigint) STORED,
    interbank_code                  text GENERATED ALWAYS AS (item->>'interbank_code') STORED,
    archived_at                     timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'archived_at')) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX transactions_date_idx ON transactions (date);

CREATE TABLE ledger_entry_lines (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    debit                           numeric GENERATED ALWAYS AS ((item->>'debit')::numeric) STORED,
    credit                          numeric GENERATED ALWAYS AS ((item->>'credit')::numeric) STORED,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    ledger_account_id               bigint GENERATED ALWAYS AS ((item->'ledger_account'->>'id')::bigint) STORED,
    ledger_account_number           text GENERATED ALWAYS AS (item->'ledger_account'->>'number') STORED,
    journal_id                      bigint GENERATED ALWAYS AS ((item->'journal'->>'id')::bigint) STORED,
    date                            date GENERATED ALWAYS AS (iso_date(item->>'date')) STORED,
    ledger_entry_id                 bigint GENERATED ALWAYS AS ((item->'ledger_entry'->>'id')::bigint) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX ledger_entry_lines_date_idx ON ledger_entry_lines (date);
CREATE INDEX ledger_entry_lines_ledger_account_id_idx ON ledger_entry_lines (ledger_account_id);
CREATE INDEX ledger_entry_lines_ledger_entry_id_idx ON ledger_entry_lines (ledger_entry_id);

-- `journal_id` is read from `journal` {id, url}: the top-level `journal_id` and `ledger_attachment_filename`
-- of the deprecated behaviour are gone since the 2026 API changes (they stay in `item` when present).
CREATE TABLE ledger_entries (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    piece_number                    text GENERATED ALWAYS AS (item->>'piece_number') STORED,
    date                            date GENERATED ALWAYS AS (iso_date(item->>'date')) STORED,
    due_date                        date GENERATED ALWAYS AS (iso_date(item->>'due_date')) STORED,
    invoice_number                  text GENERATED ALWAYS AS (item->>'invoice_number') STORED,
    journal_id                      bigint GENERATED ALWAYS AS ((item->'journal'->>'id')::bigint) STORED,
    attachment_filename             text GENERATED ALWAYS AS (item->'attachment'->>'filename') STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);
CREATE INDEX ledger_entries_date_idx ON ledger_entries (date);

CREATE TABLE ledger_accounts (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    number                          text GENERATED ALWAYS AS (item->>'number') STORED,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    vat_rate                        text GENERATED ALWAYS AS (item->>'vat_rate') STORED,
    country_alpha2                  text GENERATED ALWAYS AS (item->>'country_alpha2') STORED,
    enabled                         boolean GENERATED ALWAYS AS ((item->>'enabled')::boolean) STORED,
    type                            text GENERATED ALWAYS AS (item->>'type') STORED,
    letterable                      boolean GENERATED ALWAYS AS ((item->>'letterable')::boolean) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

CREATE TABLE journals (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    code                            text GENERATED ALWAYS AS (item->>'code') STORED,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    type                            text GENERATED ALWAYS AS (item->>'type') STORED
);

CREATE TABLE bank_accounts (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    name                            text GENERATED ALWAYS AS (item->>'name') STORED,
    currency                        text GENERATED ALWAYS AS (item->>'currency') STORED,
    balance                         numeric GENERATED ALWAYS AS ((item->>'balance')::numeric) STORED,
    bank_establishment_id           bigint GENERATED ALWAYS AS ((item->'bank_establishment'->>'id')::bigint) STORED,
    journal_id                      bigint GENERATED ALWAYS AS ((item->'journal'->>'id')::bigint) STORED,
    ledger_account_id               bigint GENERATED ALWAYS AS ((item->'ledger_account'->>'id')::bigint) STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

CREATE TABLE fiscal_years (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    start                           date GENERATED ALWAYS AS (iso_date(item->>'start')) STORED,
    finish                          date GENERATED ALWAYS AS (iso_date(item->>'finish')) STORED,
    status                          text GENERATED ALWAYS AS (item->>'status') STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

CREATE TABLE categories (
    id                              bigint PRIMARY KEY,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    direction                       text GENERATED ALWAYS AS (item->>'direction') STORED,
    category_group_id               bigint GENERATED ALWAYS AS ((item->'category_group'->>'id')::bigint) STORED,
    analytical_code                 text GENERATED ALWAYS AS (item->>'analytical_code') STORED,
    created_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'created_at')) STORED,
    updated_at                      timestamptz GENERATED ALWAYS AS (iso_timestamptz(item->>'updated_at')) STORED
);

-- The trial balance of a fiscal year over [period_start, period_end] (the query's period: the sync asks
-- for the fiscal year's), one row per ledger account `number` (the item's `number`).
CREATE TABLE trial_balance (
    fiscal_year_id                  bigint NOT NULL,
    number                          text NOT NULL,
    period_start                    date NOT NULL,
    period_end                      date NOT NULL,
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    formatted_number                text GENERATED ALWAYS AS (item->>'formatted_number') STORED,
    label                           text GENERATED ALWAYS AS (item->>'label') STORED,
    debits                          numeric GENERATED ALWAYS AS ((item->>'debits')::numeric) STORED,
    credits                         numeric GENERATED ALWAYS AS ((item->>'credits')::numeric) STORED,
    balance                         numeric GENERATED ALWAYS AS ((item->>'debits')::numeric - (item->>'credits')::numeric) STORED,
    PRIMARY KEY (fiscal_year_id, number),
    CHECK (period_start <= period_end)
);

-- The FEC of a fiscal year (`/exports/fecs`), one row per entry line: `line_no` is its line in the file
-- (the header is line 1), `item` its 18 fields keyed by their regulatory names, as written.
CREATE TABLE fec (
    fiscal_year_id                  bigint NOT NULL,
    line_no                         integer NOT NULL CHECK (line_no > 0),
    item                            jsonb NOT NULL CHECK (jsonb_typeof(item) = 'object'),
    synced_at                       timestamptz NOT NULL,
    journal_code                    text GENERATED ALWAYS AS (fec_text(item->>'JournalCode')) STORED,
    journal_lib                     text GENERATED ALWAYS AS (fec_text(item->>'JournalLib')) STORED,
    ecriture_num                    text GENERATED ALWAYS AS (fec_text(item->>'EcritureNum')) STORED,
    ecriture_date                   date GENERATED ALWAYS AS (fec_date(item->>'EcritureDate')) STORED,
    compte_num                      text GENERATED ALWAYS AS (fec_text(item->>'CompteNum')) STORED,
    compte_lib                      text GENERATED ALWAYS AS (fec_text(item->>'CompteLib')) STORED,
    comp_aux_num                    text GENERATED ALWAYS AS (fec_text(item->>'CompAuxNum')) STORED,
    comp_aux_lib                    text GENERATED ALWAYS AS (fec_text(item->>'CompAuxLib')) STORED,
    piece_ref                       text GENERATED ALWAYS AS (fec_text(item->>'PieceRef')) STORED,
    piece_date                      date GENERATED ALWAYS AS (fec_date(item->>'PieceDate')) STORED,
    ecriture_lib                    text GENERATED ALWAYS AS (fec_text(item->>'EcritureLib')) STORED,
    debit                           numeric GENERATED ALWAYS AS (fec_amount(item->>'Debit')) STORED,
    credit                          numeric GENERATED ALWAYS AS (fec_amount(item->>'Credit')) STORED,
    ecriture_let                    text GENERATED ALWAYS AS (fec_text(item->>'EcritureLet')) STORED,
    date_let                        date GENERATED ALWAYS AS (fec_date(item->>'DateLet')) STORED,
    valid_date                      date GENERATED ALWAYS AS (fec_date(item->>'ValidDate')) STORED,
    montant_devise                  numeric GENERATED ALWAYS AS (fec_amount(item->>'Montantdevise')) STORED,
    idevise                         text GENERATED ALWAYS AS (fec_text(item->>'Idevise')) STORED,
    PRIMARY KEY (fiscal_year_id, line_no)
);
CREATE INDEX fec_ecriture_date_idx ON fec (ecriture_date);
