CREATE TABLE readings (
    id       BIGSERIAL PRIMARY KEY,
    sensor   UUID NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL,
    value    DOUBLE PRECISION,
    tags     TEXT[] NOT NULL,
    attrs    JSONB NOT NULL,
    payload  JSON
);
