-- Tenants, batches and their files, the transactional outbox, and the loaded periods.

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batches (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    kind          text NOT NULL CHECK (kind IN ('excel', 'fec')),
    status        text NOT NULL CHECK (status IN ('PENDING', 'VALIDATING', 'VALIDATED', 'PROCESSING', 'COMPLETED', 'FAILED')),
    stage         text NOT NULL DEFAULT 'uploaded',
    progress      double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    period_start  date,
    period_end    date,
    errors        jsonb NOT NULL DEFAULT '[]',
    warnings      jsonb NOT NULL DEFAULT '[]',
    stats         jsonb NOT NULL DEFAULT '{}',
    options       jsonb NOT NULL DEFAULT '{}',
    auto_load     boolean NOT NULL DEFAULT false,
    created_by    text,
    status_seq    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batches_tenant_created ON batches (tenant_id, created_at DESC);
CREATE INDEX batches_tenant_status ON batches (tenant_id, status);

CREATE TABLE batch_files (
    batch_id    uuid NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    field       text NOT NULL,
    filename    text NOT NULL,
    size        bigint NOT NULL CHECK (size > 0),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    object_key  text NOT NULL,
    PRIMARY KEY (batch_id, field)
);

-- Events committed with the state change that caused them; a relay publishes then deletes them.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    routing_key  text NOT NULL,
    message_id   uuid NOT NULL UNIQUE,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The current load of each period of a tenant (written by the loader).
CREATE TABLE loaded_periods (
    tenant_id     text NOT NULL REFERENCES tenants (id),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    batch_id      uuid NOT NULL REFERENCES batches (id),
    kind          text NOT NULL,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, period_start, period_end),
    CHECK (period_start <= period_end)
);
