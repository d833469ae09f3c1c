-- The body text index of SEARCH TEXT and BODY (src/store/search_text.rs): per body, its
-- header section and decoded text parts, casemapped by the server. pg_trgm's GIN
-- indexes let `LIKE '%needle%'` find the candidate rows without reading every text;
-- PostgreSQL then checks LIKE on each. pg_trgm is a trusted extension: the database's
-- owner may create it. Bodies stored before this table get their row the first time a
-- search meets them (their text needs a MIME parser, which SQL has not).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE body_search (
    body_id BIGINT PRIMARY KEY REFERENCES bodies (id) ON DELETE CASCADE,
    header  TEXT   NOT NULL,
    body    TEXT   NOT NULL
);
CREATE INDEX body_search_header ON body_search USING gin (header gin_trgm_ops);
CREATE INDEX body_search_body ON body_search USING gin (body gin_trgm_ops);
