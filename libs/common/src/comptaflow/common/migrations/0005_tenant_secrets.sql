-- Secrets of a tenant's other systems (a Pennylane API token, an Odoo API key), encrypted at rest by
-- comptaflow.common.secrets: AES-GCM under the key `key_id` of COMPTAFLOW_SECRET_KEY, the ciphertext bound
-- to (tenant_id, name) so that one copied to another row does not decrypt. No plaintext is ever stored.
-- `key_id` repeats the key id written in the ciphertext's header, so rotation finds the rows to re-encrypt
-- without reading them; `updated_at` is when the value was last put (re-encrypting it does not change it).
CREATE TABLE tenant_secrets (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    key_id      text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    ciphertext  bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
