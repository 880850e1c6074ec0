-- "Production" data for the bank pipeline (prod-postgres runs this on first start).
CREATE TABLE customers (
  id         bigint PRIMARY KEY,
  first_name text,
  last_name  text,
  email      text UNIQUE,
  status     text NOT NULL,
  profile    jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (id, first_name, last_name, email, status, profile) VALUES
  (1, 'Alice', 'Johnson', 'alice@corp.example', 'open', '{"email":"alice@corp.example","phones":["+1 415 555 2671"],"tier":"gold"}'),
  (2, NULL, 'Smith', 'bob@corp.example', 'legacy_gold', NULL),
  (3, '', 'Müller-Lüdenscheidt', 'carol@corp.example', 'frozen', '{}');
