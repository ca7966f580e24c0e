-- Sample data for ./scripts/demo.sh: a small product catalogue in SQLite.
CREATE TABLE products (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
INSERT INTO products (id, body) VALUES
    ('p1', '{"id":"p1","name":"Espresso beans","price":12.50}'),
    ('p2', '{"id":"p2","name":"Burr grinder","price":89.00}'),
    ('p3', '{"id":"p3","name":"Milk jug","price":15.00}'),
    ('p4', '{"id":"p4","name":"Pour-over kettle","price":45.00}'),
    ('p5', '{"id":"p5","name":"Paper filters","price":4.20}');
