//! The syn-free description of a stream table: what the macro, the runtime and the
//! command line all build before calling the compiler.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How a stream table is maintained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Apply only the effect of the captured changes (incremental view maintenance).
    Differential,
    /// Recompute the query and apply the difference to the stored rows.
    Full,
}

impl Mode {
    /// The name stored in the catalog and shown by status: `DIFFERENTIAL` or `FULL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Differential => "DIFFERENTIAL",
            Mode::Full => "FULL",
        }
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
            other => Err(format!(
                "unknown refresh mode `{other}`: expected `differential` or `full`"
            )),
        }
    }
}

/// How stale a stream table may become before the scheduler refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schedule(Duration);

impl Schedule {
    /// A schedule of the given staleness bound.
    pub fn new(every: Duration) -> Self {
        Schedule(every)
    }
    /// The staleness bound.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule(Duration::from_secs(60))
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        let ms = self.0.subsec_millis();
        if ms != 0 {
            write!(f, "{}ms", self.0.as_millis())
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
    /// Parse `500ms`, `30s`, `5m`, `1h`, `1d` (also combined: `1h30m`).
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty schedule: expected a duration such as `30s`, `5m` or `1h`".into());
        }
        if t.contains(char::is_whitespace) {
            return Err(format!(
                "invalid schedule `{text}`: write a duration without spaces, such as `30s`, `5m`, `1h` or `1h30m`"
            ));
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "invalid schedule `{text}`: expected a duration such as `30s`, `5m` or `1h`"
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
        Ok(Schedule(total))
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
        match parts.as_slice() {
            [n] if !n.is_empty() => Ok(QualifiedName::new("public", *n)),
            [s, n] if !s.is_empty() && !n.is_empty() => Ok(QualifiedName::new(*s, *n)),
            _ => Err(format!(
                "invalid stream table name `{text}`: expected `name` or `schema.name`"
            )),
        }
    }
}

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
    /// The staleness bound the scheduler keeps.
    pub schedule: Schedule,
    /// How it is maintained.
    pub mode: Mode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print() {
        assert_eq!(
            "30s".parse::<Schedule>().unwrap().duration(),
            Duration::from_secs(30)
        );
        assert_eq!(
            "5m".parse::<Schedule>().unwrap().duration(),
            Duration::from_secs(300)
        );
        assert_eq!(
            "1h30m".parse::<Schedule>().unwrap().duration(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            "250ms".parse::<Schedule>().unwrap().duration(),
            Duration::from_millis(250)
        );
        assert_eq!("1h".parse::<Schedule>().unwrap().to_string(), "1h");
        assert!("".parse::<Schedule>().is_err());
        assert!("30".parse::<Schedule>().is_err());
        assert!("0s".parse::<Schedule>().is_err());
        assert!("5y"
            .parse::<Schedule>()
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn modes_and_names() {
        assert_eq!("DIFFERENTIAL".parse::<Mode>().unwrap(), Mode::Differential);
        assert_eq!("full".parse::<Mode>().unwrap(), Mode::Full);
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
    }
}
