//! The privileges granted on a storage table, read before a replacement and given
//! again on the new storage table ([`crate::replace`]): table-level grants
//! (`GRANT SELECT ON st TO r`) and column grants (`GRANT SELECT (a, b) ON st TO r`),
//! other than the owner's own. A column grant on a column the new query no longer
//! outputs cannot be kept: it is dropped with a WARN naming it.

use crate::error::{Result, Step};
use pgstream_core::{quote_ident, QualifiedName};
use sqlx::PgConnection;

/// One privilege on a storage table or one of its columns.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Grant {
    /// The column, for a column grant; `None` for a table-level grant.
    column: Option<String>,
    /// The role, or `None` for `PUBLIC`.
    grantee: Option<String>,
    /// `SELECT`, `INSERT`, ... (a keyword, as `aclexplode` writes it).
    privilege: String,
    /// Given `WITH GRANT OPTION`.
    grantable: bool,
}

/// The grants on `table` (quoted, qualified), table-level first, other than those of
/// its owner.
pub(crate) async fn read(
    conn: &mut PgConnection,
    table: &str,
    subject: Option<&str>,
) -> Result<Vec<Grant>> {
    sqlx::query_as(
        "SELECT NULL::text AS column,
                CASE WHEN a.grantee = 0 THEN NULL
                     ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END AS grantee,
                a.privilege_type AS privilege, a.is_grantable AS grantable
           FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
          WHERE c.oid = pg_catalog.to_regclass($1) AND a.grantee <> c.relowner
         UNION ALL
         SELECT att.attname::text,
                CASE WHEN a.grantee = 0 THEN NULL
                     ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END,
                a.privilege_type, a.is_grantable
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_attribute att ON att.attrelid = c.oid
          CROSS JOIN LATERAL pg_catalog.aclexplode(att.attacl) a
          WHERE c.oid = pg_catalog.to_regclass($1) AND att.attnum > 0
            AND NOT att.attisdropped AND a.grantee <> c.relowner
          ORDER BY 1 NULLS FIRST, 2, 3",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .step(subject, "reading the grants on the storage table")
}

/// Gives `grants` on `table`, as the current role (the runtime's, the owner). A column
/// grant on a column `table` does not have is skipped with a WARN.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    table: &QualifiedName,
    grants: &[Grant],
    subject: Option<&str>,
) -> Result<()> {
    let storage = pgstream_core::quote_qualified(table);
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_catalog.pg_attribute
          WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 0 AND NOT attisdropped",
    )
    .bind(&storage)
    .fetch_all(&mut *conn)
    .await
    .step(subject, "reading the new storage table's columns")?;
    for g in grants {
        // aclexplode's privilege names are keywords (SELECT, INSERT, ...): anything
        // else is not spliced into the statement.
        if g.privilege.is_empty() || !g.privilege.bytes().all(|b| b.is_ascii_uppercase()) {
            continue;
        }
        let to = g
            .grantee
            .as_deref()
            .map(quote_ident)
            .unwrap_or_else(|| "PUBLIC".to_string());
        let option = if g.grantable {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        let what = match &g.column {
            None => g.privilege.clone(),
            Some(column) if columns.contains(column) => {
                format!("{} ({})", g.privilege, quote_ident(column))
            }
            Some(column) => {
                tracing::warn!(
                    stream_table = subject.unwrap_or_default(),
                    column = %column,
                    grantee = g.grantee.as_deref().unwrap_or("PUBLIC"),
                    privilege = %g.privilege,
                    "a column grant was not kept: the new query has no column of that name"
                );
                continue;
            }
        };
        crate::pin::script(
            &mut *conn,
            &format!("GRANT {what} ON {storage} TO {to}{option}"),
        )
        .await
        .step(subject, "granting the old storage table's privileges")?;
    }
    Ok(())
}
