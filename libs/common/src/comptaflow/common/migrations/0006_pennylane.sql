-- Pennylane sync (docs/api.md, Pennylane): a tenant's connection, the state of each of its tables, the
-- request budgets shared by every process, and its Power BI login. The data itself lives in the tenant's
-- own schema `pennylane_<tenant>`, created and migrated by the pennylane-sync service.

-- The token is a tenant secret (`tenant_secrets`, name `pennylane.token`), never stored here.
-- `budget_key` is the SHA-256 fingerprint of the token (a random secret: the hash reveals nothing): tenants
-- that share a token share one request budget.
CREATE TABLE pennylane_connections (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url        text NOT NULL CHECK (base_url ~ '^https?://'),
    enabled         boolean NOT NULL DEFAULT true,
    scopes          text[] NOT NULL DEFAULT '{}',
    company_id      bigint,
    company_name    text,
    budget_key      text NOT NULL CHECK (budget_key ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per (tenant, table) once a sync has considered it. `cursor_at` is the checkpoint of a changelog
-- table: the last `processed_at` applied, written in the transaction that applied it. `status`:
-- RUNNING while a sync works on it, SUCCEEDED or FAILED (with `error`) after.
CREATE TABLE pennylane_tables (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    table_name      text NOT NULL CHECK (table_name ~ '^[a-z][a-z_]{0,62}$'),
    mode            text NOT NULL CHECK (mode IN ('incremental', 'full')),
    status          text NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'FAILED')),
    last_synced_at  timestamptz,
    cursor_at       timestamptz,
    rows            bigint NOT NULL DEFAULT 0 CHECK (rows >= 0),
    error           text,
    stats           jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, table_name)
);

-- A request budget (GCRA): the next request on `budget_key` may start at `next_at`; each request takes
-- one slot `interval` after the previous. Shared by every process and replica through this row.
CREATE TABLE pennylane_budgets (
    budget_key      text PRIMARY KEY CHECK (budget_key ~ '^[0-9a-f]{64}$'),
    next_at         timestamptz NOT NULL DEFAULT now(),
    throttled       bigint NOT NULL DEFAULT 0
);

-- The read-only PostgreSQL login of a tenant for Power BI (its password is only ever shown once).
CREATE TABLE bi_logins (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    role_name       text NOT NULL UNIQUE CHECK (role_name ~ '^cf_bi_[a-z0-9_]{1,56}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    rotated_at      timestamptz NOT NULL DEFAULT now()
);
