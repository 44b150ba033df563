//! The oracle over set-returning functions in FROM: `unnest` (one and several
//! arrays, `WITH ORDINALITY`), `jsonb_array_elements`, `jsonb_each_text`,
//! `jsonb_to_recordset`, `json_array_elements_text`, `generate_series` (constant and
//! over a column), `regexp_split_to_table` and `string_to_table`, after a comma,
//! `CROSS JOIN LATERAL` and `LEFT JOIN LATERAL ... ON`, under `GROUP BY` (counters
//! and recomputed groups), `DISTINCT`, joined with another source and over a source
//! without a primary key. Arrays hold NULL elements and duplicates, some are empty or
//! NULL; the JSON documents are arrays and objects of every such kind. 200 batches
//! each (`PGS_ORACLE_MODE=immediate` runs them in IMMEDIATE mode).

use crate::common;
use common::run_oracle;
use pgstream_core::Mode;
use pgstream_tests::oracle::{Domain, Oracle};
use pgstream_tests::test_db;

const ORDERS: &str = "CREATE TABLE orders (id int PRIMARY KEY, customer int, tags text[], \
     qty int[], items jsonb, doc jsonb, note text)";
const CUSTOMERS: &str = "CREATE TABLE customers (id int PRIMARY KEY, name text)";
const LOGS: &str = "CREATE TABLE logs (line text, n int)";

fn orders(name: &str, query: &str, seed: u64) -> Oracle {
    Oracle::new(name, query)
        .seed(seed)
        .batches(common::BATCHES)
        .truncate_probability(0.02)
        .key_range(16)
        .table("customers", CUSTOMERS)
        .table("orders", ORDERS)
        .table("logs", LOGS)
        .domain("customers", "id", Domain::Ints(0, 7))
        .domain(
            "orders",
            "customer",
            Domain::literals(&["0", "1", "2", "3", "5", "NULL"]),
        )
        .domain(
            "orders",
            "tags",
            Domain::literals(&[
                "ARRAY['a', 'b']",
                "ARRAY['a', NULL, 'a']",
                "ARRAY['b']",
                "'{}'",
                "NULL",
                "ARRAY['c', 'b', 'a']",
                "ARRAY[NULL]::text[]",
            ]),
        )
        .domain(
            "orders",
            "qty",
            Domain::literals(&[
                "ARRAY[1, 2, 3]",
                "'{}'",
                "NULL",
                "ARRAY[2, NULL]",
                "ARRAY[4]",
            ]),
        )
        .domain(
            "orders",
            "items",
            Domain::literals(&[
                r#"'[{"sku": "a", "n": 1}, {"sku": "b", "n": 2}]'"#,
                "'[]'",
                "NULL",
                r#"'[{"sku": "a"}, {"sku": "a", "n": null}, null]'"#,
                r#"'[{"sku": "c", "n": 5}, {"sku": "c", "n": 5}]'"#,
                r#"'["x", 3, [1]]'"#,
            ]),
        )
        .domain(
            "orders",
            "doc",
            Domain::literals(&[
                r#"'{"a": 1, "b": "x"}'"#,
                "'{}'",
                "NULL",
                r#"'{"a": null}'"#,
                r#"'{"c": [1, 2], "a": 1}'"#,
            ]),
        )
        .domain(
            "orders",
            "note",
            Domain::literals(&["'a b a'", "''", "NULL", "'b,c'", "'c  a'", "'a,,b'"]),
        )
        .domain(
            "logs",
            "line",
            Domain::literals(&["'a b'", "'b'", "NULL", "''", "'a a'"]),
        )
        .domain("logs", "n", Domain::Ints(0, 3))
}

macro_rules! srf {
    ($test:ident, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let name = stringify!($test);
            let db = test_db().await;
            let o = orders(name, $query, $seed);
            run_oracle(&db, &o, name, $query, Mode::Differential, &[]).await;
        }
    };
}

srf!(
    unnest_after_a_comma,
    1301,
    "SELECT o.id, t AS tag FROM orders o, unnest(o.tags) AS t"
);
srf!(unnest_with_ordinality, 1302,
    "SELECT o.id, t.tag, t.n FROM orders o CROSS JOIN LATERAL unnest(o.tags) WITH ORDINALITY AS t(tag, n)");
srf!(unnest_of_two_arrays, 1303,
    "SELECT o.id, u.tag, u.q, u.i FROM orders o, unnest(o.tags, o.qty) WITH ORDINALITY AS u(tag, q, i)");
srf!(left_join_lateral_pads_empty_and_null_arrays, 1304,
    "SELECT o.id, o.customer, t.tag FROM orders o LEFT JOIN LATERAL unnest(o.tags) AS t(tag) ON true");
srf!(
    left_join_lateral_with_a_condition,
    1305,
    "SELECT o.id, t.tag FROM orders o LEFT JOIN LATERAL unnest(o.tags) AS t(tag) ON t.tag <> 'a' \
     WHERE o.customer IS NOT NULL"
);
srf!(
    jsonb_elements_under_group_by,
    1306,
    "SELECT e.value ->> 'sku' AS sku, count(*) AS n, sum((e.value ->> 'n')::int) AS total \
     FROM orders o, jsonb_array_elements(o.items) AS e GROUP BY 1"
);
srf!(jsonb_to_recordset_joined_with_another_source, 1307,
    "SELECT c.name, o.id, r.sku, r.n FROM orders o JOIN customers c ON c.id = o.customer \
     CROSS JOIN LATERAL jsonb_to_recordset(CASE WHEN jsonb_typeof(o.items) = 'array' \
     AND NOT o.items @> '[null]' AND NOT o.items @> '[\"x\"]' THEN o.items END) AS r(sku text, n int)");
srf!(jsonb_each_text_filtered, 1308,
    "SELECT o.id, k.key, k.value FROM orders o, jsonb_each_text(o.doc) AS k WHERE k.value IS NOT NULL");
srf!(
    json_array_elements_text_with_ordinality,
    1309,
    "SELECT o.id, e.value, e.ordinality FROM orders o \
     CROSS JOIN LATERAL json_array_elements_text(o.items::json) WITH ORDINALITY AS e"
);
srf!(
    constant_generate_series_joined,
    1310,
    "SELECT g.n, o.id FROM generate_series(0, 4) AS g(n) JOIN orders o ON o.customer = g.n"
);
srf!(
    generate_series_over_a_column,
    1311,
    "SELECT o.id, g FROM orders o, generate_series(1, o.customer) AS g"
);
srf!(
    unnest_under_min_and_count_distinct,
    1312,
    "SELECT o.customer, min(t) AS first_tag, count(DISTINCT t) AS tags, count(*) AS n \
     FROM orders o, unnest(o.tags) AS t GROUP BY o.customer"
);
srf!(regexp_split_to_table_words, 1313,
    "SELECT o.id, w.word, w.i FROM orders o, regexp_split_to_table(o.note, ' ') WITH ORDINALITY AS w(word, i)");
srf!(
    string_to_table_under_left_join_of_customers,
    1314,
    "SELECT c.id AS cid, o.id AS oid, p FROM customers c LEFT JOIN orders o ON o.customer = c.id \
     LEFT JOIN LATERAL string_to_table(o.note, ',') AS p ON true"
);
srf!(
    distinct_elements,
    1315,
    "SELECT DISTINCT t FROM orders o, unnest(o.tags) AS t"
);
srf!(
    over_a_source_without_a_primary_key,
    1316,
    "SELECT l.n, w FROM logs l, string_to_table(l.line, ' ') AS w"
);
srf!(
    elements_counted_per_customer_name,
    1317,
    "SELECT c.name, count(e.value) AS n FROM customers c JOIN orders o ON o.customer = c.id \
     LEFT JOIN LATERAL jsonb_array_elements(o.items) AS e ON e.value <> 'null' GROUP BY c.name"
);
