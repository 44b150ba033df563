//! What a creation records for drift detection (the source columns the query uses,
//! the views it reads), and the backfill of both for stream tables created by older
//! releases.

use crate::catalog::{display_name, load_catalog};
use crate::error::{Error, Result, Step};
use pgstream_core::{compile, Catalog, Compiled, QualifiedName, Strategy, StreamTableSpec};
use sqlx::{Connection, PgConnection, PgPool};

/// Record the source columns the query uses, with their attnum and type, in
/// `pgs_stream_tables.source_columns`: drift checks (`pgstream._drift`) compare them
/// with the live catalog. `oids[i]` is the oid of `compiled.sources[i]`.
pub(super) async fn store_source_columns(
    conn: &mut PgConnection,
    id: i64,
    compiled: &Compiled,
    oids: &[u32],
    used: &[(QualifiedName, String)],
    name: &str,
) -> Result<()> {
    let (used_oids, used_names): (Vec<i64>, Vec<String>) = used
        .iter()
        .filter_map(|(src, col)| {
            let i = compiled.sources.iter().position(|t| t.name == *src)?;
            Some((i64::from(*oids.get(i)?), col.clone()))
        })
        .unzip();
    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables SET source_columns = (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'oid', a.attrelid::int8, 'table', n.nspname || '.' || c.relname,
                       'attnum', a.attnum, 'column', a.attname::text,
                       'type', pg_catalog.format_type(a.atttypid, a.atttypmod))
                     ORDER BY u.ord), '[]')
              FROM unnest($2::int8[], $3::text[]) WITH ORDINALITY AS u(oid, col, ord)
              JOIN pg_catalog.pg_attribute a
                ON a.attrelid = u.oid::oid AND a.attname = u.col AND NOT a.attisdropped
              JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace)
          WHERE id = $1",
    )
    .bind(id)
    .bind(&used_oids)
    .bind(&used_names)
    .execute(&mut *conn)
    .await
    .step(Some(name), "recording the source columns")?;
    Ok(())
}

/// Record the views the query reads (expanded into it: [`Compiled::views`]) in
/// `pgstream.pgs_views`: oid, name, column names, the xmin of the `_RETURN` rule and
/// the definition as compiled (`pg_get_viewdef`, from `catalog`), and mark the stream
/// table's views as recorded: `pgstream._drift` reports a view redefined, renamed or
/// dropped since. Runs in the caller's transaction, whose settings it pins like
/// `_drift` does (`search_path`, `quote_all_identifiers`: `pg_get_viewdef`'s text
/// depends on them). A view whose definition now differs from the one compiled (it was
/// replaced since the catalog was read) fails the creation.
pub(super) async fn store_views(
    conn: &mut PgConnection,
    id: i64,
    compiled: &Compiled,
    catalog: &Catalog,
    name: &str,
) -> Result<()> {
    let step = "recording the views the query reads";
    let mut schemas = Vec::new();
    let mut names = Vec::new();
    let mut definitions = Vec::new();
    for v in &compiled.views {
        let Some(view) = catalog.lookup_view(Some(&v.schema), &v.name) else {
            return Err(Error::Invalid(format!(
                "stream table {name}: the view {v} it reads is not in the catalog"
            )));
        };
        schemas.push(v.schema.clone());
        names.push(v.name.clone());
        definitions.push(view.query.clone());
    }
    sqlx::query(
        "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
                pg_catalog.set_config('quote_all_identifiers', 'off', true)",
    )
    .execute(&mut *conn)
    .await
    .step(Some(name), step)?;
    // `regclass` fails with "relation does not exist" if a view was dropped meanwhile.
    let changed: Option<String> = sqlx::query_scalar(
        "WITH u AS (
             SELECT pg_catalog.format('%I.%I', u.s, u.n)::regclass::oid AS oid, u.s, u.n, u.d, u.ord
               FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(s, n, d, ord)),
         ins AS (
             INSERT INTO pgstream.pgs_views
                    (st_id, view_oid, ord, schema_name, view_name, definition, columns, rule_xmin)
             SELECT $1, u.oid, u.ord, u.s, u.n, u.d,
                    ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = u.oid AND a.attnum > 0 AND NOT a.attisdropped
                           ORDER BY a.attnum),
                    (SELECT r.xmin FROM pg_catalog.pg_rewrite r
                      WHERE r.ev_class = u.oid AND r.rulename = '_RETURN')
               FROM u
             ON CONFLICT DO NOTHING)
         SELECT u.s || '.' || u.n FROM u
          WHERE pg_catalog.pg_get_viewdef(u.oid) IS DISTINCT FROM u.d
          ORDER BY u.ord LIMIT 1",
    )
    .bind(id)
    .bind(&schemas)
    .bind(&names)
    .bind(&definitions)
    .fetch_optional(&mut *conn)
    .await
    .step(Some(name), step)?;
    if let Some(view) = changed {
        return Err(Error::Invalid(format!(
            "stream table {name}: the view {view} was redefined while the stream table was \
             being created; create it again"
        )));
    }
    sqlx::query("UPDATE pgstream.pgs_stream_tables SET views_recorded = true WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .step(Some(name), step)?;
    Ok(())
}

/// Stream tables created before catalog version 6 have no recorded views: compile
/// each one's stored query against the live schema and record the views it reads with
/// their definitions of now (a redefinition made before the upgrade cannot be known),
/// so that later ones are detected. A query that no longer compiles is left as it is
/// (logged) and tried again at the next start-up.
pub(crate) async fn backfill_views(pool: &PgPool) -> Result<()> {
    const STEP: &str = "recording the views the queries read";
    let mut conn = crate::pin::begin(pool).await.step(None, STEP)?;
    let Some((catalog, tables)) = stored_specs(&mut conn, "NOT s.views_recorded").await? else {
        return Ok(());
    };
    for t in tables {
        let Some(compiled) = t.compile(&catalog, "the views the query reads") else {
            continue;
        };
        // In a savepoint of its own: store_views pins settings for it.
        let mut tx = conn.begin().await.step(Some(&t.name), STEP)?;
        store_views(&mut tx, t.id, &compiled, &catalog, &t.name).await?;
        tx.commit().await.step(Some(&t.name), STEP)?;
    }
    conn.commit().await.step(None, STEP)?;
    Ok(())
}

/// Stream tables created before catalog version 2 have no recorded source columns:
/// compile each one's stored query against the live schema and record them, so that
/// drift is detected from now on. A query that no longer compiles is left as it is
/// (logged); its next refresh reports the failure.
pub(crate) async fn backfill_source_columns(pool: &PgPool) -> Result<()> {
    const STEP: &str = "recording the source columns";
    let mut conn = crate::pin::begin(pool).await.step(None, STEP)?;
    let filter = "s.source_columns = '[]'::jsonb
                  AND EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f WHERE f.st_id = s.id)";
    let Some((catalog, tables)) = stored_specs(&mut conn, filter).await? else {
        return Ok(());
    };
    for t in tables {
        let Some(compiled) = t.compile(&catalog, "the source columns") else {
            continue;
        };
        let oids: Vec<u32> = compiled
            .sources
            .iter()
            .map(|source| source.oid.unwrap_or(0))
            .collect();
        let used = used_columns(&t.spec, &catalog, &compiled);
        store_source_columns(&mut conn, t.id, &compiled, &oids, &used, &t.name).await?;
    }
    conn.commit().await.step(None, STEP)?;
    Ok(())
}

/// A stream table as its catalog row defines it, for a backfill of what older
/// releases did not record.
struct Stored {
    id: i64,
    /// Display name.
    name: String,
    spec: StreamTableSpec,
}

impl Stored {
    /// The stored query compiled against `catalog`; `None` (logged: `what` cannot be
    /// recorded) when it no longer compiles.
    fn compile(&self, catalog: &Catalog, what: &str) -> Option<Compiled> {
        compile(&self.spec, catalog)
            .map_err(|e| {
                tracing::warn!(stream_table = %self.name, error = %e.render(&self.spec.query),
                    "cannot record {what}: the query does not compile");
            })
            .ok()
    }
}

/// The stream tables whose catalog rows `filter` (a condition on `s`, a static text)
/// selects, with the live schema read on `conn`; `None` when no row is selected. A
/// row whose stored mode or schedule no longer parses is left out.
async fn stored_specs(
    conn: &mut PgConnection,
    filter: &str,
) -> Result<Option<(Catalog, Vec<Stored>)>> {
    let rows: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(&format!(
        "SELECT s.id, s.schema_name, s.table_name, s.query, s.mode, s.schedule
           FROM pgstream.pgs_stream_tables s
          WHERE {filter}"
    ))
    .fetch_all(&mut *conn)
    .await
    .step(None, "reading the stream table catalog")?;
    if rows.is_empty() {
        return Ok(None);
    }
    let catalog = load_catalog(&mut *conn).await?;
    let tables = rows
        .into_iter()
        .filter_map(|(id, schema, table, query, mode, schedule)| {
            let name = QualifiedName::new(schema, table);
            let spec = StreamTableSpec {
                name: name.clone(),
                query,
                schedule: schedule.parse().ok()?,
                mode: mode.parse().ok()?,
            };
            Some(Stored {
                id,
                name: display_name(&name),
                spec,
            })
        })
        .collect();
    Ok(Some((catalog, tables)))
}

/// The `(source table, column)` pairs the defining query uses. Maintained
/// incrementally: the buffer columns of each source (the columns the query reads and
/// the primary key), unless a query around a stage reads relations whole
/// (`Compiled::reads_beyond_buffers`). Otherwise the query may be bound only partly by the compiler: a
/// column is used when the query no longer compiles, or compiles to other output
/// columns, once that column is removed from the catalog, or when its name occurs in
/// the query (with the views it reads expanded) as a word (conservative: a false
/// positive only makes drift checks stricter).
pub(super) fn used_columns(
    spec: &StreamTableSpec,
    catalog: &Catalog,
    compiled: &Compiled,
) -> Vec<(QualifiedName, String)> {
    // the words of the views' bodies too
    if compiled.strategy == Strategy::Incremental && !compiled.reads_beyond_buffers() {
        // The delta statements read exactly the buffer columns (what the query uses,
        // and the primary key the window consolidates on): no need to recompile the
        // query once per column to find them (TPC-H Q1: 16 compilations).
        return compiled
            .sources
            .iter()
            .enumerate()
            .flat_map(|(i, source)| {
                compiled
                    .buffer_columns(i)
                    .into_iter()
                    .map(move |c| (source.name.clone(), c))
            })
            .collect();
    }
    let words = query_words(&compiled.expanded_query);
    let mut used = Vec::new();
    for source in &compiled.sources {
        for col in &source.columns {
            let mut probe = catalog.clone();
            let mut t = source.clone();
            t.columns.retain(|c| c.name != col.name);
            t.primary_key.retain(|k| *k != col.name);
            probe.add_table(t);
            let uses = match compile(spec, &probe) {
                Err(_) => true,
                Ok(c) => c.columns != compiled.columns,
            } || words.contains(&col.name)
                || words.contains(&col.name.to_lowercase());
            if uses {
                used.push((source.name.clone(), col.name.clone()));
            }
        }
    }
    used
}

/// Identifier-like words of a query, lower-cased, plus quoted identifiers verbatim.
fn query_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut rest = query;
    while let Some(i) = rest.find('"') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('"') else { break };
        words.push(after[..j].to_string());
        rest = &after[j + 1..];
    }
    words
}

#[cfg(test)]
mod tests {
    use super::query_words;

    #[test]
    fn words() {
        let w = query_words("SELECT \"Mixed Case\", sum(x) FROM t WHERE y_1 > 0");
        assert!(w.contains(&"x".to_string()) && w.contains(&"y_1".to_string()));
        assert!(w.contains(&"Mixed Case".to_string()));
    }
}
