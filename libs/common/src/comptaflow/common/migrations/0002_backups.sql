-- Earlier loads of a period, kept when a load of an equal period replaced them (restorable).
-- Their rows stay in the warehouse under load_id = batch_id; their declared files are copied under s3_prefix.

CREATE TABLE backups (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    batch_id      uuid NOT NULL REFERENCES batches (id),
    replaced_by   uuid NOT NULL REFERENCES batches (id),
    s3_prefix     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (period_start <= period_end)
);
CREATE INDEX backups_period ON backups (tenant_id, period_start, period_end, created_at DESC);
CREATE INDEX loaded_periods_batch ON loaded_periods (batch_id);
