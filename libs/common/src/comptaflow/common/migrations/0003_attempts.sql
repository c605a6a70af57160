-- How many times work on a batch in its current status (validation, then loading) was started. A worker
-- counts its claim in the claiming UPDATE itself, so one killed mid-way still leaves its attempt behind:
-- a batch that kills its worker is abandoned past COMPTAFLOW_DELIVERY_LIMIT, whatever the broker counted.
ALTER TABLE batches ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0);
