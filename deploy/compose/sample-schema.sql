-- Sample schema for `docker compose up`: loaded once, when the Postgres volume is first created.
-- walnats captures every table of the database (no config file: publication FOR ALL TABLES).

CREATE TABLE customers (
  id         bigserial PRIMARY KEY,
  name       text NOT NULL,
  email      text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id          bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  qty         int NOT NULL CHECK (qty > 0),
  price       numeric(10,2) NOT NULL,
  tags        text[] NOT NULL DEFAULT '{}',
  details     jsonb,
  placed_at   timestamptz NOT NULL DEFAULT now()
);
-- Delete events (and subscriptions filtered on non-key columns) see the whole old row.
ALTER TABLE orders REPLICA IDENTITY FULL;

INSERT INTO customers (name, email) VALUES
  ('Ada Lovelace', 'ada@example.com'),
  ('Grace Hopper', 'grace@example.com');
INSERT INTO orders (customer_id, qty, price, tags, details) VALUES
  (1, 2, '19.90', '{books}', '{"gift": true}'),
  (2, 1, '5.00', '{}', null);
