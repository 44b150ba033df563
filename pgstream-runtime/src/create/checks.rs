//! The checks that refuse a creation before anything is installed: sources that
//! cannot be captured (foreign, Citus, inheritance), cycles of stream tables, and
//! volatile functions in an incremental query.

use crate::error::{Error, Result, Step};
use pgstream_core::{quote_qualified, StreamTableSpec, Table};
use sqlx::postgres::types::Oid;
use sqlx::PgConnection;

/// The oid of a source table: the one the catalog loaded, else looked up by name.
pub(crate) async fn source_oid(conn: &mut PgConnection, source: &Table, name: &str) -> Result<u32> {
    if let Some(oid) = source.oid {
        return Ok(oid);
    }
    let oid: Option<Oid> = sqlx::query_scalar("SELECT to_regclass($1)::oid")
        .bind(quote_qualified(&source.name))
        .fetch_one(&mut *conn)
        .await
        .step(Some(name), "resolving a source table")?;
    oid.map(|o| o.0).ok_or_else(|| {
        Error::Invalid(format!(
            "stream table {name}: source table {} does not exist",
            source.name
        ))
    })
}

/// Refuse a foreign table as a source: its rows change on the remote server, where
/// no trigger of this database fires, and PostgreSQL allows no transition tables on
/// a foreign table, so there is nothing to capture (the catalog loads foreign tables
/// so that this error, not "unknown table", is what the user sees).
pub(super) async fn check_not_foreign(conn: &mut PgConnection, oid: u32, name: &str) -> Result<()> {
    let foreign: Option<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c WHERE c.oid = $1 AND c.relkind = 'f'",
    )
    .bind(Oid(oid))
    .fetch_optional(&mut *conn)
    .await
    .step(Some(name), "checking the sources' kind")?;
    match foreign {
        Some(table) => Err(Error::Invalid(format!(
            "stream table {name}: source {table} is a foreign table: its rows change on the remote \
             server, where no trigger of this database fires, so pgstream cannot capture its \
             changes (in either mode). Copy it into a local table and read that"
        ))),
        None => Ok(()),
    }
}

/// Refuse a Citus table (distributed, reference, single-shard or Citus local) as a
/// source, in either mode: its rows are written to its shards, whose writes fire the
/// shards' triggers, so nothing would be captured (docs/SCALING.md, step 0). A source
/// made a Citus table after creation is drift (`pgstream._drift`).
pub(super) async fn check_not_citus(conn: &mut PgConnection, oid: u32, name: &str) -> Result<()> {
    let refusal: Option<String> = sqlx::query_scalar("SELECT pgstream._citus_refusal($1)")
        .bind(Oid(oid))
        .fetch_one(&mut *conn)
        .await
        .step(Some(name), "checking whether a source is a Citus table")?;
    match refusal {
        Some(why) => Err(Error::Invalid(format!("stream table {name}: {why}"))),
        None => Ok(()),
    }
}

/// Refuse, in DIFFERENTIAL mode, a source whose rows the capture cannot follow
/// exactly: a table with inheritance children (their rows are part of `FROM parent`,
/// its primary key does not span them, and their writes fire their own triggers), and
/// a partition or inheritance child (writes through its parent fire only the
/// parent's statement triggers). A partitioned table is accepted: every member of
/// its tree gets the capture triggers (`pgstream._sync_partitions`).
pub(super) async fn check_hierarchy(conn: &mut PgConnection, oid: u32, name: &str) -> Result<()> {
    let (source, parent, child): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT $1::oid::regclass::text,
                (SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i
                  WHERE i.inhrelid = $1 ORDER BY i.inhseqno LIMIT 1),
                (SELECT i.inhrelid::regclass::text FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class c ON c.oid = i.inhparent AND c.relkind <> 'p'
                  WHERE i.inhparent = $1 ORDER BY i.inhrelid LIMIT 1)",
    )
    .bind(Oid(oid))
    .fetch_one(&mut *conn)
    .await
    .step(Some(name), "checking the sources' inheritance")?;
    if let Some(parent) = parent {
        return Err(Error::Invalid(format!(
            "stream table {name}: source table {source} is a partition or an inheritance child of \
             {parent}, and writes through {parent} fire only {parent}'s statement triggers: \
             DIFFERENTIAL mode cannot capture them for {source}. Read {parent} (with a WHERE on \
             its partition key), or use FULL mode"
        )));
    }
    if let Some(child) = child {
        return Err(Error::Invalid(format!(
            "stream table {name}: source table {source} has inheritance children ({child}): their \
             rows are part of `FROM {source}`, but its primary key does not span them and their \
             writes fire only their own triggers, so DIFFERENTIAL mode cannot maintain it. Use \
             declarative partitioning (PARTITION BY), or FULL mode"
        )));
    }
    Ok(())
}

/// Refuse a creation that would close a cycle of stream tables: walking upstream
/// from the new stream table's sources (a source is a stream table when it is another
/// stream table's storage table) must not come back to the new storage table's name.
pub(super) async fn check_cycle(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    name: &str,
    sources: &[u32],
) -> Result<()> {
    // Edges: (stream table's storage oid, its name, source oid), of the stream tables
    // upstream of the new one's sources only, walked up from them (the seeds: rows
    // without a storage); creating stream table 10,000 does not read the 9,999 others. The catalog's `name` columns cast to text have the
    // collation "C": compared in it, the names cannot use the unique index on
    // (schema_name, table_name) of the default collation, and each step scanned every
    // stream table (9 ms per creation at 6,000); `COLLATE "default"` looks them up.
    let start: Vec<i64> = sources.iter().map(|&o| i64::from(o)).collect();
    let graph: Vec<(i64, String, i64)> = sqlx::query_as(
        "WITH RECURSIVE edge (storage, name, source) AS (
             SELECT NULL::int8, NULL::text, s.oid FROM unnest($1::int8[]) s (oid)
             UNION
             SELECT c.oid::int8, pgstream._display_name(s.schema_name, s.table_name),
                    f.source_oid::int8
               FROM edge
               JOIN pg_catalog.pg_class c ON c.oid = edge.source::oid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pgstream.pgs_stream_tables s
                 ON s.schema_name = n.nspname::text COLLATE \"default\"
                AND s.table_name = c.relname::text COLLATE \"default\"
               JOIN pgstream.pgs_frontiers f ON f.st_id = s.id)
         SELECT storage, name, source FROM edge WHERE storage IS NOT NULL",
    )
    .bind(&start)
    .fetch_all(&mut *conn)
    .await
    .step(Some(name), "checking for cycles")?;
    let target = quote_qualified(&spec.name);
    let own: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::int8")
        .bind(&target)
        .fetch_one(&mut *conn)
        .await
        .step(Some(name), "checking for cycles")?;
    if let Some(path) = find_cycle(&graph, own, name, &start, name) {
        return Err(Error::Invalid(format!(
            "stream table {name}: creating it would make a cycle of stream tables: {}",
            path.join(" -> ")
        )));
    }
    Ok(())
}

/// Depth-first search upstream from `start` (source oids). `graph` holds
/// `(storage oid, stream table name, source oid)`. Returns the names on a path that
/// reaches `own` (the new storage table's oid, if the name exists) or a stream table
/// named like the new one, starting and ending with `name`.
pub(crate) fn find_cycle(
    graph: &[(i64, String, i64)],
    own: Option<i64>,
    own_name: &str,
    start: &[i64],
    name: &str,
) -> Option<Vec<String>> {
    fn walk(
        graph: &[(i64, String, i64)],
        own: Option<i64>,
        own_name: &str,
        node: i64,
        path: &mut Vec<String>,
        seen: &mut Vec<i64>,
    ) -> bool {
        if Some(node) == own {
            return true;
        }
        if seen.contains(&node) {
            return false;
        }
        seen.push(node);
        // `node` is a stream table's storage table: continue with its sources.
        let Some((_, n, _)) = graph.iter().find(|(st, _, _)| *st == node) else {
            return false;
        };
        if n == own_name {
            return true;
        }
        path.push(n.clone());
        for (_, _, src) in graph.iter().filter(|(st, _, _)| *st == node) {
            if walk(graph, own, own_name, *src, path, seen) {
                return true;
            }
        }
        path.pop();
        false
    }
    let mut seen = Vec::new();
    for &s in start {
        let mut path = vec![name.to_string()];
        if walk(graph, own, own_name, s, &mut path, &mut seen) {
            path.push(name.to_string());
            return Some(path);
        }
    }
    None
}

/// In DIFFERENTIAL mode, a function marked VOLATILE (a user function, or a built-in the
/// compiler does not list) would be re-evaluated inconsistently by delta queries: only
/// the database knows volatility, so it is checked here, before anything is installed.
/// Unqualified names resolve in `pg_catalog`: creation and refreshes pin `search_path`.
pub(super) async fn reject_volatile_functions(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    name: &str,
    compiled: &pgstream_core::Compiled,
) -> Result<()> {
    if !spec.mode.is_incremental() || compiled.functions.is_empty() {
        return Ok(());
    }
    let schemas: Vec<String> = compiled
        .functions
        .iter()
        .map(|(s, _)| s.clone().unwrap_or_else(|| "pg_catalog".to_string()))
        .collect();
    let names: Vec<String> = compiled.functions.iter().map(|(_, n)| n.clone()).collect();
    let volatile: Option<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, p.proname)
           FROM unnest($1::text[], $2::text[]) AS f(schema_name, function_name)
           JOIN pg_catalog.pg_namespace n ON n.nspname = f.schema_name
           JOIN pg_catalog.pg_proc p ON p.pronamespace = n.oid AND p.proname = f.function_name
          WHERE p.provolatile = 'v' AND p.prokind = 'f'
          LIMIT 1",
    )
    .bind(&schemas)
    .bind(&names)
    .fetch_optional(&mut *conn)
    .await
    .step(
        Some(name),
        "checking the volatility of the query's functions",
    )?;
    if let Some(f) = volatile {
        let err = pgstream_core::Error::Unsupported(
            pgstream_core::Diagnostic::new(format!(
                "`{f}` is marked VOLATILE (its value can change between evaluations), so {} mode cannot maintain it",
                spec.mode
            ))
            .with_help("use FULL mode (mode = \"full\"), or mark the function IMMUTABLE or STABLE if it is"),
        );
        return Err(Error::compile(name, &spec.query, err));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::find_cycle;

    #[test]
    fn cycles_are_found_with_their_names() {
        // a (oid 10) reads t (1); b (11) reads a; c (12) reads b.
        let g = vec![
            (10, "a".to_string(), 1),
            (11, "b".to_string(), 10),
            (12, "c".to_string(), 11),
        ];
        // A new stream table "a2" reading c: no cycle.
        assert_eq!(find_cycle(&g, None, "a2", &[12], "a2"), None);
        // Re-creating "a" (storage oid 10 exists) to read c closes a -> c -> b -> a.
        assert_eq!(
            find_cycle(&g, Some(10), "a", &[12], "a").unwrap(),
            vec!["a", "c", "b", "a"]
        );
    }
}
