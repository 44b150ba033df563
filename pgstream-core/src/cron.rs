//! Cron expressions: when a stream table with a cron [`Schedule`](crate::Schedule) is
//! refreshed.
//!
//! The standard five fields, `minute hour day-of-month month day-of-week`, or six with
//! a `second` field first. Each field is `*`, a value, a range `a-b`, a step `*/n`,
//! `a-b/n` or `a/n` (from `a` to the end of the range), or a comma-separated list of
//! these. Months may be written `JAN`–`DEC` and weekdays `SUN`–`SAT` (any case); in
//! the day-of-week field both `0` and `7` are Sunday. The macros `@hourly`, `@daily`
//! (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) stand for
//! `0 * * * *`, `0 0 * * *`, `0 0 * * 0`, `0 0 1 * *` and `0 0 1 1 *`.
//!
//! Day-of-month and day-of-week follow the POSIX rule: when both are restricted, a day
//! matches if *either* matches (`0 0 1 * MON` fires on the 1st and on every Monday).
//! As in Vixie cron and pg_cron, a field that starts with `*` (`*`, `*/2`) counts as
//! unrestricted for this rule, so that the other field alone picks the days.
//!
//! Times are UTC. The only times computed are instants ([`std::time::SystemTime`]);
//! the calendar arithmetic is the proleptic Gregorian calendar.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A parsed cron expression. `Display` prints it as written (whitespace collapsed),
/// and parsing that text gives the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cron {
    /// The expression as written, fields separated by one space.
    text: String,
    /// Whether the expression has a seconds field (six fields).
    with_seconds: bool,
    /// Bit `n` set: second `n` fires (only bit 0 for five fields).
    seconds: u64,
    /// Bit `n` set: minute `n` (0–59).
    minutes: u64,
    /// Bit `n` set: hour `n` (0–23).
    hours: u32,
    /// Bit `n` set: day of month `n` (1–31).
    days: u32,
    /// Bit `n` set: month `n` (1–12).
    months: u16,
    /// Bit `n` set: weekday `n` (0 = Sunday … 6 = Saturday).
    weekdays: u8,
    /// The day-of-month field starts with `*`.
    dom_star: bool,
    /// The day-of-week field starts with `*`.
    dow_star: bool,
}

/// One field's name and bounds.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

impl Field {
    /// A field of numbers only.
    const fn numeric(name: &'static str, min: u32, max: u32) -> Field {
        Field {
            name,
            min,
            max,
            names: &[],
        }
    }
}

const SECOND: Field = Field::numeric("second", 0, 59);
const MINUTE: Field = Field::numeric("minute", 0, 59);
const HOUR: Field = Field::numeric("hour", 0, 23);
const DAY_OF_MONTH: Field = Field::numeric("day-of-month", 1, 31);
/// Names start at the field's minimum: `JAN` is 1.
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
/// `SUN` is 0; `7` is also Sunday (folded after parsing).
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl Field {
    /// The allowed values, for messages: `0-59`, `1-12 or JAN-DEC`.
    fn allowed(&self) -> String {
        match self.names {
            [] => format!("{}-{}", self.min, self.max),
            names => format!(
                "{}-{} or {}-{}",
                self.min,
                self.max,
                names[0],
                names[names.len() - 1]
            ),
        }
    }

    /// One value: a number or a name.
    fn value(&self, v: &str, part: &str) -> Result<u32, String> {
        if v.is_empty() {
            return Err(format!(
                "{} `{part}` is missing a value ({})",
                self.name,
                self.allowed()
            ));
        }
        if v.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 = v.parse().unwrap_or(u32::MAX);
            if n < self.min || n > self.max {
                return Err(format!(
                    "{} `{v}` is out of range {}",
                    self.name,
                    self.allowed()
                ));
            }
            return Ok(n);
        }
        if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(self.min + i as u32);
        }
        Err(format!(
            "{} `{v}` is not a valid value (expected {})",
            self.name,
            self.allowed()
        ))
    }

    /// A whole field: a comma-separated list of `*`, `a`, `a-b`, each with an
    /// optional `/step`. Bit `n` of the result is value `n`.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for part in text.split(',') {
            if part.is_empty() {
                return Err(format!("{} `{text}` has an empty list item", self.name));
            }
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let span = self.max - self.min;
                    let step = match s.parse::<u32>() {
                        Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => n,
                        _ => {
                            return Err(format!(
                                "{} step `{s}` in `{part}` is not a number (expected 1-{span})",
                                self.name
                            ))
                        }
                    };
                    if step == 0 || step > span {
                        return Err(format!(
                            "{} step `{s}` in `{part}` is out of range 1-{span}",
                            self.name
                        ));
                    }
                    (r, Some(step))
                }
                None => (part, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (lo, hi) = (self.value(a, part)?, self.value(b, part)?);
                if lo > hi {
                    return Err(format!(
                        "{} range `{range}` is reversed: write the smaller value first",
                        self.name
                    ));
                }
                (lo, hi)
            } else {
                let v = self.value(range, part)?;
                // `a/n` runs from `a` to the end of the range.
                (v, if step.is_some() { self.max } else { v })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(bits)
    }
}

impl Cron {
    /// Parse a cron expression (see the [module documentation](self)). The error
    /// quotes the expression and names the field, the bad part and the allowed range:
    /// ``invalid cron expression `*/5 25 * * *`: hour `25` is out of range 0-23``.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let normalized = words.join(" ");
        let fail = |msg: String| format!("invalid cron expression `{normalized}`: {msg}");
        if words.is_empty() {
            return Err("empty cron expression".into());
        }
        let expanded: Vec<&str> = match words.as_slice() {
            [m] if m.starts_with('@') => match m.to_ascii_lowercase().as_str() {
                "@hourly" => vec!["0", "*", "*", "*", "*"],
                "@daily" | "@midnight" => vec!["0", "0", "*", "*", "*"],
                "@weekly" => vec!["0", "0", "*", "*", "0"],
                "@monthly" => vec!["0", "0", "1", "*", "*"],
                "@yearly" | "@annually" => vec!["0", "0", "1", "1", "*"],
                _ => {
                    return Err(fail(format!(
                        "unknown macro `{m}` (use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)"
                    )))
                }
            },
            w if w.len() == 5 || w.len() == 6 => w.to_vec(),
            w => {
                let mut msg = format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (with a second field first), found {}",
                    w.len()
                );
                if w.len() < 5 {
                    msg.push_str("; a duration is written without spaces, such as `30s` or `1h30m`");
                }
                return Err(fail(msg));
            }
        };
        let with_seconds = expanded.len() == 6;
        let (seconds, rest) = if with_seconds {
            (SECOND.parse(expanded[0]).map_err(fail)?, &expanded[1..])
        } else {
            (1, &expanded[..])
        };
        let minutes = MINUTE.parse(rest[0]).map_err(fail)?;
        let hours = HOUR.parse(rest[1]).map_err(fail)? as u32;
        let days = DAY_OF_MONTH.parse(rest[2]).map_err(fail)? as u32;
        let months = MONTH.parse(rest[3]).map_err(fail)? as u16;
        let dow = DAY_OF_WEEK.parse(rest[4]).map_err(fail)?;
        // 7 is Sunday too.
        let weekdays = ((dow | (dow >> 7)) & 0x7f) as u8;
        let cron = Cron {
            text: normalized.clone(),
            with_seconds,
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            dom_star: rest[2].starts_with('*'),
            dow_star: rest[4].starts_with('*'),
        };
        // Only day-of-month alone can pick days that never come (`0 0 30 2 *`).
        if cron.dow_star && !cron.dom_star {
            let possible = (1..=12u32)
                .filter(|m| cron.months & (1 << m) != 0)
                .any(|m| (1..=max_days_in_month(m)).any(|d| cron.days & (1 << d) != 0));
            if !possible {
                let month_list: Vec<&str> = (1..=12usize)
                    .filter(|m| cron.months & (1 << m) != 0)
                    .map(|m| MONTH_NAMES[m - 1])
                    .collect();
                return Err(fail(format!(
                    "it never fires: day-of-month `{}` does not occur in {}",
                    rest[2],
                    month_list.join(", ")
                )));
            }
        }
        Ok(cron)
    }

    /// The expression as written (fields separated by one space).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the expression has a seconds field (the six-field form).
    pub fn has_seconds(&self) -> bool {
        self.with_seconds
    }

    /// The first fire time strictly after `after`, in whole seconds. `None` only if
    /// there is none within 400 years, which parsing rules out (an expression that
    /// never fires is an error).
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let start = unix_seconds_floor(after).checked_add(1)?;
        let days = start.div_euclid(86_400);
        let sod = start.rem_euclid(86_400) as u32;
        let (mut y, mut mo, mut d) = civil_from_days(days);
        let (mut h, mut mi, mut s) = (sod / 3600, sod / 60 % 60, sod % 60);
        let limit = y + 400;
        loop {
            // Carry overflowing fields upwards.
            if s > 59 {
                s = 0;
                mi += 1;
            }
            if mi > 59 {
                mi = 0;
                h += 1;
            }
            if h > 23 {
                h = 0;
                d += 1;
            }
            if d > days_in_month(y, mo) {
                d = 1;
                mo += 1;
            }
            if mo > 12 {
                mo = 1;
                y += 1;
            }
            if y > limit {
                return None;
            }
            if self.months & (1 << mo) == 0 {
                (mo, d, h, mi, s) = (mo + 1, 1, 0, 0, 0);
                if mo > 12 {
                    (y, mo) = (y + 1, 1);
                }
                continue;
            }
            if !self.day_matches(y, mo, d) {
                (d, h, mi, s) = (d + 1, 0, 0, 0);
                continue;
            }
            match next_bit(self.hours as u64, h, 23) {
                Some(x) if x == h => {}
                Some(x) => {
                    (h, mi, s) = (x, 0, 0);
                    continue;
                }
                None => {
                    (d, h, mi, s) = (d + 1, 0, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, mi, 59) {
                Some(x) if x == mi => {}
                Some(x) => {
                    (mi, s) = (x, 0);
                    continue;
                }
                None => {
                    (h, mi, s) = (h + 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.seconds, s, 59) {
                Some(x) => s = x,
                None => {
                    (mi, s) = (mi + 1, 0);
                    continue;
                }
            }
            let t = days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
            return Some(from_unix_seconds(t));
        }
    }

    /// The longest time between two consecutive fire times: how stale the stream
    /// table can become between two refreshes. Exact, over the 400-year Gregorian
    /// cycle (`0 0 29 2 *` gives eight years, from 2096 to 2104).
    pub fn longest_gap(&self) -> Duration {
        // Fire times within one day: the same for every matching day.
        let mut first = None;
        let mut prev: Option<u32> = None;
        let mut within_day = 0u32;
        for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            for m in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                for s in (0..60).filter(|s| self.seconds & (1 << s) != 0) {
                    let t = h * 3600 + m * 60 + s;
                    if let Some(p) = prev {
                        within_day = within_day.max(t - p);
                    }
                    first.get_or_insert(t);
                    prev = Some(t);
                }
            }
        }
        let (first, last) = (first.unwrap_or(0), prev.unwrap_or(0));
        // Matching days over one cycle of 146,097 days (a whole number of weeks).
        const CYCLE: i64 = 146_097;
        let mut first_day = None;
        let mut prev_day: Option<i64> = None;
        let mut day_gap = 0i64;
        let (mut y, mut mo, mut d) = civil_from_days(0);
        for day in 0..CYCLE {
            if self.months & (1 << mo) != 0 && self.day_matches(y, mo, d) {
                if let Some(p) = prev_day {
                    day_gap = day_gap.max(day - p);
                }
                first_day.get_or_insert(day);
                prev_day = Some(day);
            }
            d += 1;
            if d > days_in_month(y, mo) {
                (d, mo) = (1, mo + 1);
                if mo > 12 {
                    (y, mo) = (y + 1, 1);
                }
            }
        }
        if let (Some(f), Some(l)) = (first_day, prev_day) {
            day_gap = day_gap.max(f + CYCLE - l);
        }
        let across_days = day_gap * 86_400 - i64::from(last - first);
        Duration::from_secs(across_days.max(i64::from(within_day)) as u64)
    }

    /// Day-of-month and day-of-week, with the POSIX rule (either, when both are
    /// restricted).
    fn day_matches(&self, y: i64, mo: u32, d: u32) -> bool {
        let dom = self.days & (1 << d) != 0;
        let weekday = (days_from_civil(y, mo, d) + 4).rem_euclid(7) as u32;
        let dow = self.weekdays & (1 << weekday) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Cron {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Cron::parse(s)
    }
}

/// The smallest set bit `>= from` and `<= max`.
fn next_bit(bits: u64, from: u32, max: u32) -> Option<u32> {
    (from..=max).find(|b| bits & (1 << b) != 0)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The most days a month ever has (February: 29).
fn max_days_in_month(m: u32) -> u32 {
    days_in_month(2000, m)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whole seconds since the epoch, rounded down (also before 1970).
fn unix_seconds_floor(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            let s = d.as_secs() as i64;
            if d.subsec_nanos() > 0 {
                -s - 1
            } else {
                -s
            }
        }
    }
}

fn from_unix_seconds(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

#[cfg(test)]
mod tests;
