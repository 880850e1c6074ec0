-- "Production" data for the shop pipeline (prod-mysql runs this on first start).
CREATE TABLE shop.orders (
  id             bigint unsigned NOT NULL PRIMARY KEY,
  customer_email varchar(120) NOT NULL,
  ship_to        varchar(200),
  note           text,
  total          decimal(12,2) NOT NULL,
  placed_at      datetime(6) NOT NULL
) DEFAULT CHARSET=utf8mb4;
INSERT INTO shop.orders VALUES
  (1, 'alice@corp.example', '1 Main St, Springfield', 'leave at the door', 19.90, '2026-05-01 09:30:00'),
  (2, 'bob@corp.example', NULL, NULL, 5.00, '2026-05-02 10:00:00.250000');
