//! The syn-free description of a stream table: what the macro, the runtime and the
//! command line all build before calling the compiler.

use crate::cron::Cron;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// How a stream table is maintained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Apply only the effect of the captured changes (incremental view maintenance).
    Differential,
    /// Recompute the query and apply the difference to the stored rows.
    Full,
    /// Apply the effect of each statement's changes inside the writing transaction
    /// (the same delta rules as [`Mode::Differential`]), so the writer reads its own
    /// writes through the stream table; writers of its sources are serialised on it.
    Immediate,
}

impl Mode {
    /// The name stored in the catalog and shown by status: `DIFFERENTIAL`, `FULL` or
    /// `IMMEDIATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Differential => "DIFFERENTIAL",
            Mode::Full => "FULL",
            Mode::Immediate => "IMMEDIATE",
        }
    }

    /// The mode whose statements this mode's stream tables are compiled to: an
    /// IMMEDIATE stream table has the statements of a DIFFERENTIAL one (its writers run
    /// them), so it maintains exactly the queries DIFFERENTIAL mode maintains.
    pub fn compiled_as(self) -> Mode {
        match self {
            Mode::Immediate => Mode::Differential,
            m => m,
        }
    }

    /// Whether the stream table applies deltas (DIFFERENTIAL or IMMEDIATE), so that
    /// the rules of incremental maintenance (no volatile functions, sources whose
    /// changes are all captured) apply.
    pub fn is_incremental(self) -> bool {
        self.compiled_as() == Mode::Differential
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "differential" => Ok(Mode::Differential),
            "full" => Ok(Mode::Full),
            "immediate" => Ok(Mode::Immediate),
            other => Err(format!(
                "unknown refresh mode `{other}`: expected `differential`, `full` or `immediate`"
            )),
        }
    }
}

/// When the scheduler refreshes a stream table: a staleness bound written as a
/// duration (`30s`, `5m`, `1h30m`: refresh once the last refresh is older than that),
/// a [cron expression](crate::cron) (`*/5 * * * *`, `0 3 * * MON-FRI`, `@daily`:
/// refresh at each fire time, UTC), `on commit`: refresh as soon as a transaction
/// that changed a source commits (capture notifies the runtime; see
/// [`Schedule::ON_COMMIT_FALLBACK`] for the periodic safety net), or `inherit`: for a
/// stream table that other stream tables read, refresh it just before its most
/// demanding reader, as often as that reader (see [`Schedule::inherit`]).
///
/// `Display` prints what `FromStr` reads: durations in their largest whole unit,
/// cron expressions as written, `on commit`, `inherit`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule(Kind);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    Every(Duration),
    Cron(Cron),
    OnCommit,
    Inherit,
}

impl Schedule {
    /// A schedule of the given staleness bound.
    pub fn new(every: Duration) -> Self {
        Schedule(Kind::Every(every))
    }
    /// A schedule that fires at the times of a cron expression.
    pub fn cron(cron: Cron) -> Self {
        Schedule(Kind::Cron(cron))
    }
    /// Refresh on commit: the runtime refreshes the stream table as soon as a
    /// transaction that changed one of its sources commits.
    pub fn on_commit() -> Self {
        Schedule(Kind::OnCommit)
    }
    /// Follow the readers: the stream table has no schedule of its own and is
    /// refreshed whenever a stream table that reads it (directly, or through other
    /// inheriting stream tables) is about to be refreshed, just before it, so it is as
    /// fresh as its most demanding reader needs and a chain is consistent end to
    /// end. Inheriting stream tables read by one reader are refreshed together, up to
    /// one state of their sources. Without readers, it is refreshed as a duration
    /// schedule of [`Schedule::INHERIT_FALLBACK`] would be.
    pub fn inherit() -> Self {
        Schedule(Kind::Inherit)
    }
    /// How the catalog spells the inherited schedule.
    pub const INHERIT: &'static str = "inherit";
    /// The schedule of an inheriting stream table that no stream table reads (and its
    /// `schedule_interval` in the catalog).
    pub const INHERIT_FALLBACK: Duration = Duration::from_secs(60);
    /// How the catalog spells the on-commit schedule (what `Display` prints for
    /// [`Schedule::on_commit`]).
    pub const ON_COMMIT: &'static str = "on commit";
    /// The safety net of an on-commit schedule: the scheduler also refreshes an
    /// on-commit stream table whose last refresh is older than this and whose sources
    /// have changes (a notification that was lost, a runtime that was down), as a
    /// duration schedule of this length would. Also its `schedule_interval` in the
    /// catalog ([`Schedule::nominal_interval`]).
    pub const ON_COMMIT_FALLBACK: Duration = Duration::from_secs(60);
    /// The staleness bound, if the schedule is a duration.
    pub fn as_duration(&self) -> Option<Duration> {
        match &self.0 {
            Kind::Every(d) => Some(*d),
            Kind::Cron(_) | Kind::OnCommit | Kind::Inherit => None,
        }
    }
    /// The cron expression, if the schedule is one.
    pub fn as_cron(&self) -> Option<&Cron> {
        match &self.0 {
            Kind::Cron(c) => Some(c),
            Kind::Every(_) | Kind::OnCommit | Kind::Inherit => None,
        }
    }
    /// Whether the schedule is a cron expression.
    pub fn is_cron(&self) -> bool {
        matches!(self.0, Kind::Cron(_))
    }
    /// Whether the schedule is `on commit`.
    pub fn is_on_commit(&self) -> bool {
        matches!(self.0, Kind::OnCommit)
    }
    /// Whether the schedule is `inherit` (follow the readers).
    pub fn is_inherit(&self) -> bool {
        matches!(self.0, Kind::Inherit)
    }
    /// The schedule as one duration, for places that need one (the catalog's
    /// `schedule_interval`, the `stale` flag of `pgstream.pgs_status()`): the
    /// duration itself, for a cron expression the longest time between two
    /// consecutive fire times ([`Cron::longest_gap`]), which bounds how stale the
    /// stream table becomes, for `on commit` [`Schedule::ON_COMMIT_FALLBACK`], and
    /// for `inherit` [`Schedule::INHERIT_FALLBACK`] (the effective schedule, its
    /// readers', is computed in the database).
    pub fn nominal_interval(&self) -> Duration {
        match &self.0 {
            Kind::Every(d) => *d,
            Kind::Cron(c) => c.longest_gap(),
            Kind::OnCommit => Self::ON_COMMIT_FALLBACK,
            Kind::Inherit => Self::INHERIT_FALLBACK,
        }
    }
    /// For a cron schedule, the first fire time strictly after `after` (whole
    /// seconds, UTC). For a duration, `after` plus the duration; for `on commit`,
    /// `after` plus [`Schedule::ON_COMMIT_FALLBACK`], for `inherit` `after` plus
    /// [`Schedule::INHERIT_FALLBACK`]. `None` only if the time cannot be represented.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        match &self.0 {
            Kind::Every(d) => after.checked_add(*d),
            Kind::Cron(c) => c.next_after(after),
            Kind::OnCommit => after.checked_add(Self::ON_COMMIT_FALLBACK),
            Kind::Inherit => after.checked_add(Self::INHERIT_FALLBACK),
        }
    }
    /// Whether a refresh is due at `now`, given the last refresh (or, if there was
    /// none, the creation time) at `since`: a fire time (or the end of the staleness
    /// bound) lies in `(since, now]`.
    pub fn is_due(&self, since: SystemTime, now: SystemTime) -> bool {
        self.next_after(since).is_some_and(|t| t <= now)
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::new(Duration::from_secs(60))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match &self.0 {
            Kind::Cron(c) => return fmt::Display::fmt(c, f),
            Kind::OnCommit => return f.write_str(Self::ON_COMMIT),
            Kind::Inherit => return f.write_str(Self::INHERIT),
            Kind::Every(d) => d,
        };
        let s = d.as_secs();
        let ms = d.subsec_millis();
        if ms != 0 {
            write!(f, "{}ms", d.as_millis())
        } else if s.is_multiple_of(86400) && s > 0 {
            write!(f, "{}d", s / 86400)
        } else if s.is_multiple_of(3600) && s > 0 {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) && s > 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    /// Parse a duration, `500ms`, `30s`, `5m`, `1h`, `1d` (also combined: `1h30m`),
    /// `on commit` (any case, any whitespace between the words), `inherit` (any
    /// case), or a cron expression: anything else with spaces or starting with `@`
    /// (see [`Cron::parse`]).
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(
                "empty schedule: expected a duration such as `30s`, `5m` or `1h`, `on commit`, or a cron expression such as `*/5 * * * *`"
                    .into(),
            );
        }
        if t.eq_ignore_ascii_case(Self::INHERIT) {
            return Ok(Schedule::inherit());
        }
        if t.eq_ignore_ascii_case("inherited") {
            return Err(format!("invalid schedule `{t}`: write `inherit`"));
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        if let [first, ..] = words.as_slice() {
            if first.eq_ignore_ascii_case("on") {
                return match words.as_slice() {
                    [_, w] if w.eq_ignore_ascii_case("commit") => Ok(Schedule::on_commit()),
                    _ => Err(format!(
                        "invalid schedule `{}`: did you mean `on commit`?",
                        words.join(" ")
                    )),
                };
            }
        }
        if t.eq_ignore_ascii_case("on_commit") || t.eq_ignore_ascii_case("oncommit") {
            return Err(format!(
                "invalid schedule `{t}`: write `on commit` (two words)"
            ));
        }
        if t.starts_with('@') || t.contains(char::is_whitespace) {
            let fields = t.split_whitespace().count();
            let duration_like = t.starts_with(|c: char| c.is_ascii_digit())
                && t.contains(|c: char| c.is_ascii_alphabetic());
            if fields < 5 && duration_like {
                // `30 seconds` is a duration with a space, not a short cron expression.
                return Err(format!(
                    "invalid schedule `{}`: write a duration without spaces, such as `30s`, `5m`, `1h` \
                     or `1h30m`; a cron expression has 5 fields (minute hour day-of-month month \
                     day-of-week), not {fields}",
                    t.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
            return Cron::parse(t).map(Schedule::cron);
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "invalid schedule `{text}`: expected a duration such as `30s`, `5m` or `1h`, \
                     or a cron expression such as `*/5 * * * *`"
                ));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid schedule `{text}`: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let d = match unit {
                "ms" => Duration::from_millis(n),
                "s" | "sec" | "secs" => Duration::from_secs(n),
                "m" | "min" | "mins" => Duration::from_secs(n * 60),
                "h" => Duration::from_secs(n * 3600),
                "d" => Duration::from_secs(n * 86400),
                "" => {
                    return Err(format!(
                        "invalid schedule `{text}`: missing unit (ms, s, m, h or d)"
                    ))
                }
                u => {
                    return Err(format!(
                        "invalid schedule `{text}`: unknown unit `{u}` (use ms, s, m, h or d)"
                    ))
                }
            };
            total += d;
        }
        if total.is_zero() {
            return Err(format!(
                "invalid schedule `{text}`: must be greater than zero"
            ));
        }
        Ok(Schedule::new(total))
    }
}

/// A schema-qualified name (`schema.name`); the schema defaults to `public`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// The schema.
    pub schema: String,
    /// The object's name within the schema.
    pub name: String,
}

impl QualifiedName {
    /// A qualified name from its parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }
    /// Parse `name` or `schema.name` (no quoting; names are taken literally, as
    /// PostgreSQL stores them). A bare name is in `public`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let parts: Vec<&str> = t.split('.').collect();
        let q = match parts.as_slice() {
            [n] if !n.is_empty() => QualifiedName::new("public", *n),
            [s, n] if !s.is_empty() && !n.is_empty() => QualifiedName::new(*s, *n),
            _ => {
                return Err(format!(
                    "invalid stream table name `{text}`: expected `name` or `schema.name`"
                ))
            }
        };
        q.check_length()?;
        Ok(q)
    }

    /// An error when the schema or the name is longer than PostgreSQL keeps
    /// ([`MAX_IDENTIFIER_BYTES`] bytes of UTF-8): PostgreSQL would truncate it, and the
    /// stream table would be stored under another name than the table.
    pub fn check_length(&self) -> Result<(), String> {
        for (what, part) in [("schema", &self.schema), ("name", &self.name)] {
            if part.len() > MAX_IDENTIFIER_BYTES {
                return Err(format!(
                    "the stream table {what} `{part}` is {} bytes long; PostgreSQL keeps at most {MAX_IDENTIFIER_BYTES} bytes of an identifier (NAMEDATALEN - 1) and would truncate it: choose a shorter {what}",
                    part.len()
                ));
            }
        }
        Ok(())
    }
}

/// The longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1` in a default
/// build); longer ones are truncated.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Everything needed to compile one stream table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTableSpec {
    /// Where the storage table lives.
    pub name: QualifiedName,
    /// The defining query.
    pub query: String,
    /// When the scheduler refreshes it.
    pub schedule: Schedule,
    /// How it is maintained.
    pub mode: Mode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print() {
        for (text, millis) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
        ] {
            let d = text.parse::<Schedule>().unwrap().as_duration();
            assert_eq!(d, Some(Duration::from_millis(millis)), "{text}");
        }
        assert_eq!("1h".parse::<Schedule>().unwrap().to_string(), "1h");
        for bad in ["", "30", "0s"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad:?}");
        }
        let unit = "5y".parse::<Schedule>().unwrap_err();
        assert!(unit.contains("unknown unit"), "{unit}");
    }

    #[test]
    fn cron_schedules() {
        let s: Schedule = " */5  * * * * ".parse().unwrap();
        assert!(s.is_cron());
        assert_eq!(s.as_duration(), None);
        assert_eq!(s.to_string(), "*/5 * * * *");
        assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        assert_eq!(s.nominal_interval(), Duration::from_secs(300));
        assert_eq!(
            "@hourly".parse::<Schedule>().unwrap().to_string(),
            "@hourly"
        );
        assert_eq!(
            "*/5 25 * * *".parse::<Schedule>().unwrap_err(),
            "invalid cron expression `*/5 25 * * *`: hour `25` is out of range 0-23"
        );
        assert!("30 seconds"
            .parse::<Schedule>()
            .unwrap_err()
            .contains("write a duration without spaces"));
        assert!("* * *"
            .parse::<Schedule>()
            .unwrap_err()
            .starts_with("invalid cron expression `* * *`: expected 5 fields"));
        assert!("*/5"
            .parse::<Schedule>()
            .unwrap_err()
            .contains("or a cron expression such as `*/5 * * * *`"));

        // Due once a fire time lies in (since, now].
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 22:13:20
        let at = |s: u64| base + Duration::from_secs(s);
        assert_eq!(s.next_after(base), Some(at(100)));
        assert!(!s.is_due(base, at(99)));
        assert!(s.is_due(base, at(100)));
        assert!(!s.is_due(at(100), at(399)));
        let every: Schedule = "30s".parse().unwrap();
        assert!(!every.is_due(base, at(29)));
        assert!(every.is_due(base, at(30)));
        assert_eq!(every.nominal_interval(), Duration::from_secs(30));
    }

    #[test]
    fn on_commit_schedules() {
        for text in ["on commit", "ON COMMIT", "  On   Commit ", "on\tcommit"] {
            let s: Schedule = text.parse().unwrap();
            assert!(s.is_on_commit(), "{text}");
            assert_eq!(s, Schedule::on_commit());
            assert!(!s.is_cron());
            assert_eq!(s.as_duration(), None);
            assert_eq!(s.to_string(), Schedule::ON_COMMIT);
            assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        }
        let s = Schedule::on_commit();
        assert_eq!(s.nominal_interval(), Schedule::ON_COMMIT_FALLBACK);
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(!s.is_due(base, base + Duration::from_secs(59)));
        assert!(s.is_due(base, base + Schedule::ON_COMMIT_FALLBACK));
        for bad in [
            "on",
            "on commits",
            "on commit now",
            "on rollback",
            "on_commit",
            "oncommit",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(e.contains("on commit"), "{bad}: {e}");
        }
        assert!("commit".parse::<Schedule>().is_err());
    }

    #[test]
    fn inherit_schedules() {
        for text in ["inherit", "INHERIT", " Inherit "] {
            let s: Schedule = text.parse().unwrap();
            assert!(s.is_inherit(), "{text}");
            assert!(!s.is_cron() && !s.is_on_commit());
            assert_eq!(s.as_duration(), None);
            assert_eq!(s.to_string(), Schedule::INHERIT);
            assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        }
        assert_eq!(
            Schedule::inherit().nominal_interval(),
            Schedule::INHERIT_FALLBACK
        );
        let typo = "inherited".parse::<Schedule>().unwrap_err();
        assert!(typo.contains("write `inherit`"), "{typo}");
    }

    #[test]
    fn modes_and_names() {
        assert_eq!("DIFFERENTIAL".parse::<Mode>().unwrap(), Mode::Differential);
        assert_eq!("full".parse::<Mode>().unwrap(), Mode::Full);
        assert_eq!("Immediate".parse::<Mode>().unwrap(), Mode::Immediate);
        assert_eq!(Mode::Immediate.to_string(), "IMMEDIATE");
        assert_eq!(Mode::Immediate.compiled_as(), Mode::Differential);
        assert!(Mode::Immediate.is_incremental() && !Mode::Full.is_incremental());
        assert!("fast"
            .parse::<Mode>()
            .unwrap_err()
            .contains("`differential`, `full` or `immediate`"));
        assert!("fast".parse::<Mode>().is_err());
        assert_eq!(
            QualifiedName::parse("a.b").unwrap(),
            QualifiedName::new("a", "b")
        );
        assert_eq!(
            QualifiedName::parse("b").unwrap(),
            QualifiedName::new("public", "b")
        );
        assert!(QualifiedName::parse("a.b.c").is_err());
        // Bytes, not characters: 63 bytes pass, 64 do not (é is two bytes).
        assert!(QualifiedName::parse(&"a".repeat(63)).is_ok());
        let err = QualifiedName::parse(&"a".repeat(64)).unwrap_err();
        assert!(err.contains("at most 63 bytes"), "{err}");
        assert!(QualifiedName::parse(&"é".repeat(32)).is_err());
        assert!(QualifiedName::parse(&format!("{}.t", "s".repeat(64))).is_err());
    }
}
