-- Jobs: work that is not an accounting batch (a Pennylane sync, a payroll import, a refresh).
--
--     PENDING → RUNNING → SUCCEEDED
--        └─────────┴────→ FAILED
--
-- RUNNING → RUNNING is a take-over after a crash (counted in `attempts`). Every change bumps
-- `status_seq`, the `seq` of the job's status events. `comptaflow.common.jobs` guards each transition in
-- its UPDATE; the trigger below refuses any other change of status, whoever writes it.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants (id),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.-]{0,62}$'),
    status           text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    stage            text NOT NULL DEFAULT 'queued',
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    message          text NOT NULL DEFAULT '',
    params           jsonb NOT NULL DEFAULT '{}',
    stats            jsonb NOT NULL DEFAULT '{}',
    errors           jsonb NOT NULL DEFAULT '[]',
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    status_seq       bigint NOT NULL DEFAULT 0,
    -- A scheduler asking twice for the same run (same tenant, kind and key) gets the same job.
    idempotency_key  text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    UNIQUE (tenant_id, kind, idempotency_key)
);
-- The tenant's list, newest first, unfiltered or filtered by kind or by status.
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_kind_created ON jobs (tenant_id, kind, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_status_created ON jobs (tenant_id, status, created_at DESC, id DESC);

CREATE FUNCTION jobs_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status_seq < OLD.status_seq THEN
        RAISE EXCEPTION 'job %: status_seq may not decrease (% to %)', OLD.id, OLD.status_seq, NEW.status_seq
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND (OLD.status, NEW.status) NOT IN (
        ('PENDING', 'RUNNING'), ('PENDING', 'FAILED'), ('RUNNING', 'SUCCEEDED'), ('RUNNING', 'FAILED')
    ) THEN
        RAISE EXCEPTION 'job %: status may not go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_forward_only BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_forward_only();
