//! The random DML: values drawn from small domains, INSERT/UPDATE/DELETE/TRUNCATE
//! statements, transactions of them, and schema changes of unused columns.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use sqlx::{PgConnection, PgPool};

use super::{mismatch_text, Column, Domain, Existing, Kind, Oracle, Table, WORDS};

impl Oracle {
    /// One schema change of a column the query does not read (see
    /// [`Oracle::schema_changes`]); `spares` holds those columns per table.
    pub(super) fn schema_change(
        &self,
        rng: &mut StdRng,
        spares: &mut HashMap<String, Vec<String>>,
        added: &mut usize,
    ) -> String {
        let (table, _) = self.tables.choose(rng).expect("at least one table");
        let cols = spares.entry(table.clone()).or_default();
        let mut fresh = || {
            *added += 1;
            format!("spare_{added}")
        };
        let what = if cols.is_empty() {
            0
        } else {
            rng.gen_range(0..3)
        };
        match what {
            0 => {
                let name = fresh();
                let ty = ["int", "text", "numeric(8,2)", "timestamptz", "boolean"]
                    .choose(rng)
                    .expect("types");
                let default = if rng.gen_bool(0.5) {
                    match *ty {
                        "int" => " DEFAULT 7",
                        "text" => " DEFAULT 'dflt'",
                        _ => "",
                    }
                } else {
                    ""
                };
                cols.push(name.clone());
                format!(
                    "ALTER TABLE {table} ADD COLUMN {} {ty}{default}",
                    quote_ident(&name)
                )
            }
            1 => {
                let i = rng.gen_range(0..cols.len());
                let old = cols.remove(i);
                format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(&old))
            }
            _ => {
                let i = rng.gen_range(0..cols.len());
                let name = fresh();
                let old = std::mem::replace(&mut cols[i], name.clone());
                format!(
                    "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                    quote_ident(&old),
                    quote_ident(&name)
                )
            }
        }
    }

    /// The next fresh key of each table whose primary key is one integer column.
    pub(super) async fn init_next_keys(
        &self,
        pool: &PgPool,
        tables: &[Table],
    ) -> Result<(), String> {
        let mut next = HashMap::new();
        for t in tables {
            if let [k] = t.key[..] {
                let c = &t.columns[k];
                if t.has_pk && c.kind == Kind::Int {
                    let sql = format!(
                        "SELECT coalesce(max({})::int8 + 1, 0) FROM {}",
                        quote_ident(&c.name),
                        t.name
                    );
                    let n: i64 = sqlx::query_scalar(&sql)
                        .fetch_one(pool)
                        .await
                        .map_err(|e| format!("{sql}: {e}"))?;
                    next.insert(t.name.clone(), n);
                }
            }
        }
        *self.next_keys.lock().expect("next keys") = next;
        Ok(())
    }

    /// A value for column `c` of `t`, cast to the column's type: in insert-only mode a
    /// fresh key (see [`Oracle::fresh_key`]), else one from the column's [`Domain`],
    /// else one drawn for its type (see [`Oracle::typed_value`]).
    pub(super) fn value(
        &self,
        rng: &mut StdRng,
        t: &Table,
        c: &Column,
        cache: &Existing,
    ) -> String {
        let fresh = if self.insert_only && c.is_key && t.key.len() == 1 {
            self.fresh_key(rng, &t.name)
        } else {
            None
        };
        let lit =
            fresh.unwrap_or_else(
                || match self.domains.get(&(t.name.clone(), c.name.clone())) {
                    Some(d) => {
                        let existing = cache.get(&c.name).map(Vec::as_slice).unwrap_or_default();
                        self.domain_value(rng, d, existing)
                    }
                    None => self.typed_value(rng, c),
                },
            );
        if lit == "NULL" {
            format!("NULL::{}", c.sql_type)
        } else {
            format!("({lit})::{}", c.sql_type)
        }
    }

    /// In insert-only mode, the next fresh key of `table` (one whose primary key is one
    /// integer column), or one in use one time in ten (a conflict); `None` for other
    /// tables.
    fn fresh_key(&self, rng: &mut StdRng, table: &str) -> Option<String> {
        let mut next = self.next_keys.lock().expect("next keys");
        let n = next.get_mut(table)?;
        if *n > 0 && rng.gen_bool(0.1) {
            return Some(rng.gen_range(0..*n).to_string());
        }
        *n += 1;
        Some((*n - 1).to_string())
    }

    /// A literal (or NULL) from a column's domain; `existing` holds the current values
    /// of a [`Domain::Existing`] column.
    fn domain_value(&self, rng: &mut StdRng, domain: &Domain, existing: &[String]) -> String {
        match domain {
            Domain::Ints(lo, hi) => rng.gen_range(*lo..=*hi).to_string(),
            Domain::KeyOf { table, ahead, null } => {
                if *null > 0.0 && rng.gen_bool(null.min(1.0)) {
                    return "NULL".into();
                }
                let issued = self
                    .next_keys
                    .lock()
                    .expect("next keys")
                    .get(table)
                    .copied()
                    .unwrap_or(self.key_range);
                rng.gen_range(0..(issued + ahead).max(1)).to_string()
            }
            Domain::Literals(v) => v.choose(rng).cloned().unwrap_or_else(|| "NULL".into()),
            Domain::Existing { .. } => existing
                .choose(rng)
                .cloned()
                .unwrap_or_else(|| "NULL".into()),
        }
    }

    /// A literal (or NULL, in a nullable column) drawn for the column's type from few
    /// values, so that groups and joins collide.
    fn typed_value(&self, rng: &mut StdRng, c: &Column) -> String {
        if c.nullable && rng.gen_bool(self.null_probability) {
            return "NULL".into();
        }
        let key = c.is_key;
        match c.kind {
            Kind::Int if key => rng.gen_range(0..self.key_range).to_string(),
            Kind::Int => rng.gen_range(0..10).to_string(),
            Kind::Text if key => format!("'k{}'", rng.gen_range(0..self.key_range)),
            Kind::Text => quote_literal(WORDS.choose(rng).expect("words")),
            Kind::Numeric if key => rng.gen_range(0..self.key_range).to_string(),
            Kind::Numeric => {
                // Few distinct values, two decimals, sometimes negative.
                let cents = rng.gen_range(-2..40) * 25;
                format!("{}", cents as f64 / 100.0)
            }
            Kind::Float => {
                let v = rng.gen_range(-3..20) as f64 * 0.1;
                format!("'{v}'")
            }
            Kind::Bool => if rng.gen_bool(0.5) { "true" } else { "false" }.into(),
            Kind::Date => format!("'2024-01-{:02}'", rng.gen_range(1..=(10 + key as u32 * 18))),
            Kind::Timestamp => format!(
                "'2024-01-01 {:02}:{:02}:00'",
                rng.gen_range(0..24),
                [0, 30][rng.gen_range(0..2)]
            ),
            Kind::Other => "NULL".into(),
        }
    }

    pub(super) fn row(&self, rng: &mut StdRng, t: &Table, cache: &Existing) -> String {
        let vals: Vec<String> = t
            .columns
            .iter()
            .map(|c| self.value(rng, t, c, cache))
            .collect();
        format!("({})", vals.join(", "))
    }

    pub(super) fn col_list(t: &Table) -> String {
        t.columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn insert_sql(
        &self,
        rng: &mut StdRng,
        t: &Table,
        n: usize,
        cache: &Existing,
    ) -> String {
        let mut rows: Vec<String> = Vec::new();
        for _ in 0..n {
            if !rows.is_empty() && rng.gen_bool(0.15) {
                let dup = rows.choose(rng).expect("nonempty").clone();
                rows.push(dup); // exact duplicate row
            } else {
                rows.push(self.row(rng, t, cache));
            }
        }
        let conflict = if t.has_pk {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} ({}) VALUES {}{conflict}",
            t.name,
            Self::col_list(t),
            rows.join(", ")
        )
    }

    /// A predicate selecting some rows of `t`.
    pub(super) fn predicate(&self, rng: &mut StdRng, t: &Table, cache: &Existing) -> String {
        let roll = rng.gen_range(0..10);
        if roll < 5 {
            // By key.
            let parts: Vec<String> = t
                .key
                .iter()
                .map(|&i| {
                    let c = &t.columns[i];
                    format!(
                        "{} = {}",
                        quote_ident(&c.name),
                        self.value(rng, t, c, cache)
                    )
                })
                .collect();
            parts.join(" AND ")
        } else if roll < 9 {
            // By some column's value (often several rows), or IS NULL.
            let c = t.columns.choose(rng).expect("columns");
            if c.nullable && rng.gen_bool(0.2) {
                format!("{} IS NULL", quote_ident(&c.name))
            } else {
                format!(
                    "{} = {}",
                    quote_ident(&c.name),
                    self.value(rng, t, c, cache)
                )
            }
        } else {
            // A random subset of everything.
            let m = rng.gen_range(2..5);
            let r = rng.gen_range(0..m);
            format!(
                "abs(hashtext(ROW({})::text || '{}')) % {m} = {r}",
                Self::col_list(t),
                rng.gen::<u16>()
            )
        }
    }

    pub(super) fn update_sql(&self, rng: &mut StdRng, t: &Table, cache: &Existing) -> String {
        let mut idx: Vec<usize> = (0..t.columns.len()).collect();
        idx.shuffle(rng);
        let k = rng.gen_range(1..=idx.len());
        let sets: Vec<String> = idx[..k]
            .iter()
            .map(|&i| {
                let c = &t.columns[i];
                let name = quote_ident(&c.name);
                if rng.gen_bool(0.1) {
                    format!("{name} = {name}") // no-op update
                } else {
                    format!("{name} = {}", self.value(rng, t, c, cache))
                }
            })
            .collect();
        format!(
            "UPDATE {} SET {} WHERE {}",
            t.name,
            sets.join(", "),
            self.predicate(rng, t, cache)
        )
    }

    /// One transaction of random statements (`begin`: `BEGIN` and its options).
    pub(super) async fn transaction(
        &self,
        pool: &PgPool,
        rng: &mut StdRng,
        tables: &[Table],
        log: &mut Vec<String>,
        begin: &str,
        check: Option<&[(String, bool)]>,
    ) -> Result<(), String> {
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        sqlx::raw_sql(begin)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        log.push(begin.into());
        let result = self.statements(&mut conn, rng, tables, log, check).await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        log.push(end.into());
        let r2 = sqlx::raw_sql(end).execute(&mut *conn).await;
        result?;
        r2.map(|_| ()).map_err(|e| format!("{end}: {e}"))
    }

    /// 1–6 random statements; with `check`, the stream table (of these visible
    /// columns) is compared with the query after each one, on `conn`.
    pub(super) async fn statements(
        &self,
        conn: &mut PgConnection,
        rng: &mut StdRng,
        tables: &[Table],
        log: &mut Vec<String>,
        check: Option<&[(String, bool)]>,
    ) -> Result<(), String> {
        let n = rng.gen_range(1..=6);
        for _ in 0..n {
            self.statement(conn, rng, tables, log).await?;
            if let Some(cols) = check {
                // IMMEDIATE mode: exact after every statement, inside the transaction.
                match self.compare_on(conn, cols).await {
                    Ok(None) => {}
                    Ok(Some(kind)) => {
                        return Err(format!(
                            "inside the writing transaction, after its last statement: {}",
                            mismatch_text(&kind)
                        ))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// One random statement of a transaction (see [`Oracle::statements`]).
    pub(super) async fn statement(
        &self,
        conn: &mut PgConnection,
        rng: &mut StdRng,
        tables: &[Table],
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let t = tables.choose(rng).expect("at least one table");
        if self.bulk_probability > 0.0 && rng.gen_bool(self.bulk_probability.min(1.0)) {
            let c = quote_ident(&t.columns[0].name);
            exec_dml(conn, &format!("UPDATE {} SET {c} = {c}", t.name), log, true).await?;
            return Ok(());
        }
        let cache = self.load_existing(conn, t).await?;
        // The statement names the table or one of its partitions.
        let named;
        let t = match self.targets.get(&t.name).and_then(|r| r.choose(rng)) {
            Some(rel) => {
                named = Table {
                    name: rel.clone(),
                    ..t.clone()
                };
                &named
            }
            None => t,
        };
        if self.insert_only {
            let rows = rng.gen_range(1..=5);
            let sql = self.insert_sql(rng, t, rows, &cache);
            exec_dml(conn, &sql, log, true).await?;
            return Ok(());
        }
        if self.truncate_probability > 0.0 && rng.gen_bool(self.truncate_probability.min(1.0)) {
            exec_dml(conn, &format!("TRUNCATE {}", t.name), log, true).await?;
            return Ok(());
        }
        match rng.gen_range(0..100) {
            0..=39 => {
                let rows = rng.gen_range(1..=5);
                let sql = self.insert_sql(rng, t, rows, &cache);
                exec_dml(conn, &sql, log, true).await?;
            }
            40..=44 if t.has_pk => {
                // Upsert.
                let keys: Vec<String> = t
                    .key
                    .iter()
                    .map(|&i| quote_ident(&t.columns[i].name))
                    .collect();
                let sets: Vec<String> = t
                    .columns
                    .iter()
                    .filter(|c| !c.is_key)
                    .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
                    .collect();
                let action = if sets.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", sets.join(", "))
                };
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO {action}",
                    t.name,
                    Self::col_list(t),
                    self.row(rng, t, &cache),
                    keys.join(", ")
                );
                exec_dml(conn, &sql, log, true).await?;
            }
            40..=69 => {
                let sql = self.update_sql(rng, t, &cache);
                exec_dml(conn, &sql, log, true).await?;
            }
            70..=89 => {
                let sql = format!(
                    "DELETE FROM {} WHERE {}",
                    t.name,
                    self.predicate(rng, t, &cache)
                );
                exec_dml(conn, &sql, log, true).await?;
            }
            _ => {
                // Delete and re-insert one key in this transaction.
                let key_vals: Vec<(usize, String)> = t
                    .key
                    .iter()
                    .map(|&i| (i, self.value(rng, t, &t.columns[i], &cache)))
                    .collect();
                let key_pred: Vec<String> = key_vals
                    .iter()
                    .map(|(i, v)| format!("{} = {v}", quote_ident(&t.columns[*i].name)))
                    .collect();
                let key_pred = key_pred.join(" AND ");
                if rng.gen_bool(0.5) {
                    let cols = Self::col_list(t);
                    let sql = format!(
                        "WITH d AS (DELETE FROM {t} WHERE {key_pred} RETURNING {cols}) \
                         INSERT INTO {t} ({cols}) SELECT {cols} FROM d",
                        t = t.name
                    );
                    exec_dml(conn, &sql, log, true).await?;
                } else {
                    let del = format!("DELETE FROM {} WHERE {key_pred}", t.name);
                    exec_dml(conn, &del, log, true).await?;
                    // Same key, new other values.
                    let vals: Vec<String> = t
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if let Some((_, v)) = key_vals.iter().find(|(k, _)| *k == i) {
                                v.clone()
                            } else {
                                self.value(rng, t, c, &cache)
                            }
                        })
                        .collect();
                    let ins = format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        t.name,
                        Self::col_list(t),
                        vals.join(", ")
                    );
                    exec_dml(conn, &ins, log, true).await?;
                }
            }
        }
        Ok(())
    }
}

/// Runs one generated statement. With `savepoint`, constraint violations and data
/// exceptions (SQLSTATE classes 23, 22; 0A for TRUNCATE of a referenced table) are
/// rolled back to a savepoint and logged; other errors are returned.
pub(super) async fn exec_dml(
    conn: &mut PgConnection,
    sql: &str,
    log: &mut Vec<String>,
    savepoint: bool,
) -> Result<(), String> {
    // One round trip: the savepoint and the statement (the savepoint is not
    // released; savepoints of the same name nest and ROLLBACK TO finds the last).
    let full = if savepoint {
        format!("SAVEPOINT pgs_oracle; {sql}")
    } else {
        sql.to_string()
    };
    match sqlx::raw_sql(&full).execute(&mut *conn).await {
        Ok(r) => {
            log.push(format!("{sql}; -- {} row(s)", r.rows_affected()));
            Ok(())
        }
        Err(e) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.to_string()))
                .unwrap_or_default();
            let tolerated = code.starts_with("23")
                || code.starts_with("22")
                || (code.starts_with("0A") && sql.starts_with("TRUNCATE"));
            if savepoint && tolerated {
                log.push(format!("-- rolled back: {sql}; -- {e}"));
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT pgs_oracle")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            } else {
                log.push(format!("-- FAILED: {sql}; -- {e}"));
                Err(format!("{e} (SQLSTATE {code})\n{sql}"))
            }
        }
    }
}

/// Double-quotes an identifier if needed (lower-case names pass unchanged).
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
