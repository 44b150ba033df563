-- Columns of many types, for the cases that check field types against SQL types.
CREATE TABLE readings (
    id        BIGSERIAL PRIMARY KEY,
    sensor    UUID NOT NULL,
    taken_at  TIMESTAMPTZ NOT NULL,
    day       DATE NOT NULL,
    value     DOUBLE PRECISION,
    ok        BOOLEAN NOT NULL,
    tags      TEXT[] NOT NULL,
    attrs     JSONB NOT NULL,
    payload   JSON,
    location  POINT,
    note      XML
);
