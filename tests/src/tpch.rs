//! TPC-H for the tests: the schema and the 22 queries of the TPC-H specification
//! (shared with the compiler's tests, `pgstream-core/tests/tpch/`), data generated
//! in-process by the `tpchgen` crate, and the refresh functions RF1 and RF2 plus
//! updates to every table, as SQL.

use sqlx::PgConnection;

/// The TPC-H schema with its primary keys, and the view `revenue0` of query 15.
pub const SCHEMA: &str = pgstream::compiler::testing::TPCH_SCHEMA;

/// The 22 queries as the specification writes them, with its validation
/// parameters: `(number, text)`.
pub fn queries() -> Vec<(usize, String)> {
    pgstream::compiler::testing::tpch_queries()
}

/// Sends the rows (each `Display`ed as a `|`-terminated TPC-H `.tbl` line) to
/// `COPY table FROM STDIN`.
async fn copy<R: std::fmt::Display>(
    conn: &mut PgConnection,
    table: &str,
    rows: impl Iterator<Item = R>,
) -> Result<(), sqlx::Error> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN (DELIMITER '|')"))
        .await?;
    let mut buf = String::new();
    for r in rows {
        let line = r.to_string();
        buf.push_str(line.strip_suffix('|').unwrap_or(&line));
        buf.push('\n');
        if buf.len() > 1 << 20 {
            copy.send(std::mem::take(&mut buf).into_bytes()).await?;
        }
    }
    copy.send(buf.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Creates the schema on `conn` and loads the data of scale factor `sf`, then
/// analyzes the tables.
pub async fn load(conn: &mut PgConnection, sf: f64) -> Result<(), sqlx::Error> {
    use tpchgen::generators::*;
    sqlx::raw_sql(SCHEMA).execute(&mut *conn).await?;
    copy(conn, "region", RegionGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "nation", NationGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "part", PartGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "supplier", SupplierGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "partsupp", PartSuppGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "customer", CustomerGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "orders", OrderGenerator::new(sf, 1, 1).iter()).await?;
    copy(conn, "lineitem", LineItemGenerator::new(sf, 1, 1).iter()).await?;
    sqlx::raw_sql("ANALYZE").execute(&mut *conn).await?;
    Ok(())
}

/// Indexes on the foreign keys of the TPC-H schema, which the specification allows
/// beside the primary keys (clause 1.4.2) and TPC-H kits for PostgreSQL create. A
/// delta term that joins the changed rows of one table to another by a foreign key
/// (changed parts to their lineitems, a changed nation to its customers) probes
/// them instead of scanning the whole table.
pub const FOREIGN_KEY_INDEXES: &str = "
CREATE INDEX ON nation (n_regionkey);
CREATE INDEX ON supplier (s_nationkey);
CREATE INDEX ON customer (c_nationkey);
CREATE INDEX ON partsupp (ps_suppkey);
CREATE INDEX ON orders (o_custkey);
CREATE INDEX ON lineitem (l_partkey, l_suppkey);
CREATE INDEX ON lineitem (l_suppkey);
ANALYZE;
";

/// One round of changes, as SQL, for round number `round` (which varies the rows
/// chosen) touching about `n` orders:
/// - RF1: `n` new orders, each a copy of an existing order (its customer moved on
///   by `round`, its dates shifted by up to 60 days) with copies of its lineitems;
/// - RF2: `n` existing orders deleted with their lineitems;
/// - updates: prices, discounts, ship and receipt dates and quantities of some
///   lineitems, priorities, dates and comments of some orders, a part's type and
///   container, some partsupp costs and quantities, a customer's nation, balance
///   and market segment, a supplier's nation and balance, a nation's region.
///
/// The updates touch about 1 % of orders, parts, partsupps and customers and 0.5 %
/// of lineitems (see [`round_sql_with`] for a lighter round).
pub fn round_sql(round: u64, n: u64) -> String {
    round_sql_with(round, n, 97 + 2 * round)
}

/// [`round_sql`] whose updates touch one row in `modulus` of orders, parts, partsupps
/// and customers (lineitems: two in `4 * modulus + 1`); `modulus` should differ
/// between rounds so that they pick different rows.
pub fn round_sql_with(round: u64, n: u64, modulus: u64) -> String {
    let r = round;
    let m = modulus;
    format!(
        "
-- RF1
CREATE TEMP TABLE IF NOT EXISTS pgs_rf1 (src int, dst int);
TRUNCATE pgs_rf1;
INSERT INTO pgs_rf1
SELECT o_orderkey, (SELECT max(o_orderkey) FROM orders) + row_number() OVER (ORDER BY o_orderkey)
  FROM (SELECT o_orderkey FROM orders WHERE o_orderkey % {m} = {r} ORDER BY o_orderkey LIMIT {n}) s;
INSERT INTO orders
SELECT f.dst, (SELECT min(c_custkey) FROM customer) + (o_custkey + {r} * 7) % (SELECT count(*) FROM customer),
       o_orderstatus, o_totalprice, o_orderdate + ((f.dst * 7 + {r}) % 61)::int, o_orderpriority,
       o_clerk, o_shippriority, o_comment
  FROM pgs_rf1 f JOIN orders o ON o.o_orderkey = f.src;
INSERT INTO lineitem
SELECT f.dst, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount,
       l_tax, l_returnflag, l_linestatus, l_shipdate + ((f.dst * 7 + {r}) % 61)::int,
       l_commitdate + ((f.dst * 7 + {r}) % 61)::int, l_receiptdate + ((f.dst * 7 + {r}) % 61)::int,
       l_shipinstruct, l_shipmode, l_comment
  FROM pgs_rf1 f JOIN lineitem l ON l.l_orderkey = f.src;
-- RF2
CREATE TEMP TABLE IF NOT EXISTS pgs_rf2 (k int);
TRUNCATE pgs_rf2;
INSERT INTO pgs_rf2
SELECT o_orderkey FROM orders WHERE o_orderkey % {m} = {m2} ORDER BY o_orderkey LIMIT {n};
DELETE FROM lineitem WHERE l_orderkey IN (SELECT k FROM pgs_rf2);
DELETE FROM orders WHERE o_orderkey IN (SELECT k FROM pgs_rf2);
-- updates
UPDATE lineitem SET l_extendedprice = l_extendedprice * 1.05, l_discount = (l_discount + 0.01) % 0.11
 WHERE (l_orderkey * 3 + l_linenumber) % {m3} = {r};
UPDATE lineitem SET l_shipdate = l_shipdate + 40, l_receiptdate = l_receiptdate + 45,
       l_quantity = l_quantity + 5
 WHERE (l_orderkey * 5 + l_linenumber) % {m3} = {r};
UPDATE orders SET o_orderpriority = CASE WHEN o_orderpriority LIKE '1%' THEN '3-MEDIUM' ELSE '1-URGENT' END,
       o_orderdate = o_orderdate - 20,
       o_comment = CASE WHEN o_orderkey % 2 = 0 THEN 'special packages requests' ELSE left(o_comment, 70) || ' x' END
 WHERE o_orderkey % {m} = {m4};
UPDATE part SET p_type = CASE WHEN p_type LIKE 'PROMO%' THEN 'ECONOMY ANODIZED STEEL' ELSE 'PROMO BRUSHED BRASS' END,
       p_container = CASE WHEN p_container = 'MED BOX' THEN 'SM CASE' ELSE 'MED BOX' END,
       p_retailprice = p_retailprice + 1
 WHERE p_partkey % {m} = {r};
UPDATE partsupp SET ps_supplycost = ps_supplycost * 0.9, ps_availqty = ps_availqty + 100
 WHERE (ps_partkey + ps_suppkey) % {m} = {r};
UPDATE customer SET c_nationkey = (c_nationkey + 3 + {r}) % 25, c_acctbal = c_acctbal + 100,
       c_mktsegment = CASE WHEN c_mktsegment = 'BUILDING' THEN 'MACHINERY' ELSE 'BUILDING' END
 WHERE c_custkey % {m} = {r};
UPDATE supplier SET s_nationkey = (s_nationkey + 5 + {r}) % 25, s_acctbal = s_acctbal - 50
 WHERE s_suppkey = (SELECT min(s_suppkey) FROM supplier) + {r} * 3;
UPDATE nation SET n_regionkey = (n_regionkey + 1) % 5 WHERE n_nationkey = ({r} * 7) % 25;
",
        m2 = (r + 11) % m,
        m3 = 4 * m + 1,
        m4 = (r + 23) % m,
    )
}
