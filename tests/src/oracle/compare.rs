//! The comparison of a stream table with its defining query, as multisets
//! (`EXCEPT ALL` both ways).

use sqlx::{PgConnection, PgPool, Row};

use super::{quote_ident, FailureKind, Oracle};

/// The columns of the relation `$1` (a `regclass` text), in order, with their type
/// names.
const COLUMNS_SQL: &str = "SELECT a.attname::text, t.typname::text FROM pg_attribute a \
     JOIN pg_type t ON t.oid = a.atttypid \
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attnum";

impl Oracle {
    /// `None` if equal, else the mismatch.
    pub(super) async fn compare(
        &self,
        pool: &PgPool,
        st_cols: &[(String, bool)],
    ) -> Result<Option<FailureKind>, String> {
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        self.compare_on(&mut conn, st_cols).await
    }

    /// [`Oracle::compare`] on `conn` (inside its transaction, if one is open).
    pub(super) async fn compare_on(
        &self,
        conn: &mut PgConnection,
        st_cols: &[(String, bool)],
    ) -> Result<Option<FailureKind>, String> {
        let n = st_cols.len();
        let aliases: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
        // Exact comparison: each value's text, so numeric scale (1.50 vs 1.500), NULLs
        // and types without an equality operator (json) are compared exactly; only
        // floating-point columns may be rounded (`float_tolerance`).
        let wrap = |expr: String, float: bool| match (float, self.float_digits) {
            (true, Some(d)) => format!("round(({expr})::numeric, {d})"),
            _ => format!("({expr})::text"),
        };
        let q_side = format!(
            "SELECT {} FROM ({}) AS q({})",
            st_cols
                .iter()
                .zip(&aliases)
                .map(|((_, float), a)| wrap(format!("q.{a}"), *float))
                .collect::<Vec<_>>()
                .join(", "),
            self.query,
            aliases.join(", ")
        );
        let s_side = format!(
            "SELECT {} FROM {}",
            st_cols
                .iter()
                .map(|(c, float)| wrap(quote_ident(c), *float))
                .collect::<Vec<_>>()
                .join(", "),
            self.table_sql()
        );
        let missing_sql = format!("({q_side}) EXCEPT ALL ({s_side})");
        let extra_sql = format!("({s_side}) EXCEPT ALL ({q_side})");
        let count_sql = format!(
            "SELECT (SELECT count(*) FROM ({missing_sql}) x), (SELECT count(*) FROM ({extra_sql}) y)"
        );
        let (missing_count, extra_count): (i64, i64) = sqlx::query_as(&count_sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| format!("comparison query failed: {e}\n{count_sql}"))?;
        if missing_count == 0 && extra_count == 0 {
            return self.copies_numbered(conn).await;
        }
        let mut sample = Vec::new();
        for sql in [missing_sql, extra_sql] {
            sample.push(
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT x::text FROM ({sql}) x ORDER BY 1 LIMIT 20"
                ))
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| format!("sample query failed: {e}"))?,
            );
        }
        let extra = sample.pop().unwrap_or_default();
        let missing = sample.pop().unwrap_or_default();
        Ok(Some(FailureKind::Mismatch {
            missing_count,
            missing,
            extra_count,
            extra,
        }))
    }

    /// When the stream table stores a bag (a column `__pgs_n`, the copy's number
    /// among equal rows): whether the copies of each row are numbered 1..c, which the
    /// refresh statements rely on (they delete the copies numbered above the new count
    /// and append after the stored ones). Equal rows are those with equal text over
    /// every column but `__pgs_n` and `__pgs_row_id` (hidden key columns included, as
    /// the statements number them). `None` when they are, or when it stores no bag.
    async fn copies_numbered(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<FailureKind>, String> {
        let table = self.table_sql();
        let columns: Vec<String> = sqlx::query_as::<_, (String, String)>(COLUMNS_SQL)
            .bind(&table)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| format!("cannot read columns of {table}: {e}"))?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if !columns.iter().any(|c| c == "__pgs_n") {
            return Ok(None);
        }
        let row = columns
            .iter()
            .filter(|c| *c != "__pgs_n" && *c != "__pgs_row_id")
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT g.t FROM (SELECT ROW({row})::text COLLATE \"C\" AS t, \"__pgs_n\" AS n FROM {table}) AS g \
             GROUP BY g.t HAVING min(g.n) <> 1 OR max(g.n) <> count(*) OR count(DISTINCT g.n) <> count(*) \
             ORDER BY 1 LIMIT 5"
        );
        let bad: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| format!("numbering check failed: {e}\n{sql}"))?;
        Ok((!bad.is_empty()).then(|| {
            FailureKind::Other(format!(
                "the stored copies of these rows are not numbered 1..c (__pgs_n): {bad:?}"
            ))
        }))
    }

    /// The stream table as SQL: quoted, unless the name is already qualified.
    fn table_sql(&self) -> String {
        if self.stream_table.contains('.') {
            self.stream_table.clone()
        } else {
            quote_ident(&self.stream_table)
        }
    }

    /// Visible columns of the stream table and whether each is floating-point.
    pub(super) async fn stream_columns(
        &self,
        pool: &PgPool,
    ) -> Result<Vec<(String, bool)>, String> {
        let rows = sqlx::query(COLUMNS_SQL)
            .bind(&self.stream_table)
            .fetch_all(pool)
            .await
            .map_err(|e| format!("cannot read columns of {}: {e}", self.stream_table))?;
        let all: Vec<(String, bool)> = rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let ty: String = r.get(1);
                (name, ty == "float4" || ty == "float8")
            })
            .collect();
        match &self.visible_columns {
            Some(cols) => cols
                .iter()
                .map(|c| {
                    all.iter()
                        .find(|(n, _)| n == c)
                        .cloned()
                        .ok_or_else(|| format!("{} has no column {c}", self.stream_table))
                })
                .collect(),
            None => Ok(all
                .into_iter()
                .filter(|(n, _)| !n.starts_with("__pgs"))
                .collect()),
        }
    }
}
