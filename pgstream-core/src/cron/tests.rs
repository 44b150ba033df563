//! Tests of the cron parser and the next-fire computation.

use super::*;

/// `YYYY-MM-DD hh:mm:ss` (UTC) as an instant.
fn at(text: &str) -> SystemTime {
    let n = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap();
    let days = days_from_civil(i64::from(n(0..4)), n(5..7), n(8..10));
    from_unix_seconds(days * 86_400 + i64::from(n(11..13) * 3600 + n(14..16) * 60 + n(17..19)))
}

fn show(t: SystemTime) -> String {
    let s = unix_seconds_floor(t);
    let (y, m, d) = civil_from_days(s.div_euclid(86_400));
    let r = s.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// Check every `<expression> | <instant> => <fire times>` line of section
/// `## <section>` of `fire_times.txt`: the first fire times after the instant, in
/// order. All mismatches are reported at once.
fn check_fire_times(section: &str) {
    const CASES: &str = include_str!("fire_times.txt");
    let mut wrong = Vec::new();
    let mut seen = 0;
    for line in CASES
        .lines()
        .skip_while(|l| l.strip_prefix("## ") != Some(section))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        seen += 1;
        let (expr, rest) = line
            .split_once(" | ")
            .expect("`expression | instant => times`");
        let (after, want) = rest.split_once(" => ").expect("`instant => times`");
        let cron = Cron::parse(expr).unwrap();
        let mut t = at(after);
        let got: Vec<String> = want
            .split(", ")
            .map(|_| {
                t = cron.next_after(t).unwrap();
                show(t)
            })
            .collect();
        if got.join(", ") != want {
            wrong.push(format!("{line}\n   got {}", got.join(", ")));
        }
    }
    assert!(seen > 0, "no cases for `{section}`");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn err(expr: &str) -> String {
    Cron::parse(expr).unwrap_err()
}

#[test]
fn calendar_round_trips() {
    for days in [-800_000i64, -1, 0, 1, 11_016, 19_782, 800_000] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(show(at("2024-02-29 23:59:59")), "2024-02-29 23:59:59");
}

#[test]
fn parses_fields() {
    let c = Cron::parse("*/15 9-17 * * MON-FRI").unwrap();
    assert_eq!(c.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
    assert_eq!(c.hours, (9..=17).map(|h| 1u32 << h).sum::<u32>());
    assert_eq!(c.weekdays, 0b0011_1110);
    assert_eq!(c.days, (1..=31).map(|d| 1u32 << d).sum::<u32>());
    assert!(!c.has_seconds());
    assert_eq!(c.seconds, 1);

    let c = Cron::parse("0 0 1,15 jan,Jul 5-7").unwrap();
    assert_eq!(c.days, 1 << 1 | 1 << 15);
    assert_eq!(c.months, 1 << 1 | 1 << 7);
    // 5-7: Friday, Saturday, Sunday (7 folds onto 0).
    assert_eq!(c.weekdays, 1 | 1 << 5 | 1 << 6);
    assert_eq!(Cron::parse("0 0 * * 7").unwrap().weekdays, 1);
    assert_eq!(Cron::parse("0 0 * * sun").unwrap().weekdays, 1);

    let c = Cron::parse("10-50/20 5/6 * * *").unwrap();
    assert_eq!(c.minutes, 1 << 10 | 1 << 30 | 1 << 50);
    assert_eq!(c.hours, 1 << 5 | 1 << 11 | 1 << 17 | 1 << 23);

    let c = Cron::parse("*/20 * * * * *").unwrap();
    assert!(c.has_seconds());
    assert_eq!(c.seconds, 1 | 1 << 20 | 1 << 40);
    assert_eq!(c.minutes, (1u64 << 60) - 1);
}

#[test]
fn macros_expand() {
    let same = |a: &str, b: &str| {
        let (a, b) = (Cron::parse(a).unwrap(), Cron::parse(b).unwrap());
        assert_eq!(
            (a.seconds, a.minutes, a.hours, a.days, a.months, a.weekdays),
            (b.seconds, b.minutes, b.hours, b.days, b.months, b.weekdays)
        );
    };
    same("@hourly", "0 * * * *");
    same("@daily", "0 0 * * *");
    same("@MIDNIGHT", "0 0 * * *");
    same("@weekly", "0 0 * * 0");
    same("@monthly", "0 0 1 * *");
    same("@yearly", "0 0 1 1 *");
    same("@annually", "0 0 1 1 *");
    check_fire_times("macros_expand");
}

#[test]
fn prints_as_written() {
    let c = Cron::parse("  */5\t*  * *   MON ").unwrap();
    assert_eq!(c.to_string(), "*/5 * * * MON");
    assert_eq!(c.to_string().parse::<Cron>().unwrap(), c);
    assert_eq!(Cron::parse("@daily").unwrap().as_str(), "@daily");
}

#[test]
fn errors_name_the_field_and_the_range() {
    assert_eq!(
        err("*/5 25 * * *"),
        "invalid cron expression `*/5 25 * * *`: hour `25` is out of range 0-23"
    );
    assert_eq!(
        err("60 * * * *"),
        "invalid cron expression `60 * * * *`: minute `60` is out of range 0-59"
    );
    assert_eq!(
        err("0 0 0 * *"),
        "invalid cron expression `0 0 0 * *`: day-of-month `0` is out of range 1-31"
    );
    assert_eq!(
        err("0 0 * 13 *"),
        "invalid cron expression `0 0 * 13 *`: month `13` is out of range 1-12 or JAN-DEC"
    );
    assert_eq!(
        err("0 0 * * 8"),
        "invalid cron expression `0 0 * * 8`: day-of-week `8` is out of range 0-7 or SUN-SAT"
    );
    assert_eq!(
        err("0 0 * FOO *"),
        "invalid cron expression `0 0 * FOO *`: month `FOO` is not a valid value (expected 1-12 or JAN-DEC)"
    );
    assert_eq!(
        err("0 MON * * *"),
        "invalid cron expression `0 MON * * *`: hour `MON` is not a valid value (expected 0-23)"
    );
    assert_eq!(
        err("61 * * * * *"),
        "invalid cron expression `61 * * * * *`: second `61` is out of range 0-59"
    );
    assert_eq!(
        err("*/0 * * * *"),
        "invalid cron expression `*/0 * * * *`: minute step `0` in `*/0` is out of range 1-59"
    );
    assert_eq!(
        err("*/x * * * *"),
        "invalid cron expression `*/x * * * *`: minute step `x` in `*/x` is not a number (expected 1-59)"
    );
    assert_eq!(
        err("0 17-9 * * *"),
        "invalid cron expression `0 17-9 * * *`: hour range `17-9` is reversed: write the smaller value first"
    );
    assert_eq!(
        err("1,,2 * * * *"),
        "invalid cron expression `1,,2 * * * *`: minute `1,,2` has an empty list item"
    );
    assert_eq!(
        err("0 5- * * *"),
        "invalid cron expression `0 5- * * *`: hour `5-` is missing a value (0-23)"
    );
    assert_eq!(
        err("* * * *"),
        "invalid cron expression `* * * *`: expected 5 fields (minute hour day-of-month month day-of-week) \
         or 6 (with a second field first), found 4; a duration is written without spaces, such as `30s` or `1h30m`"
    );
    assert!(err("* * * * * * *").ends_with("found 7"));
    assert_eq!(
        err("@often"),
        "invalid cron expression `@often`: unknown macro `@often` \
         (use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually)"
    );
    assert_eq!(
        err("0 0 30,31 2 *"),
        "invalid cron expression `0 0 30,31 2 *`: it never fires: day-of-month `30,31` does not occur in February"
    );
    assert_eq!(
        err("0 0 31 APR,jun *"),
        "invalid cron expression `0 0 31 APR,jun *`: it never fires: day-of-month `31` does not occur in April, June"
    );
    // With a weekday as well, the weekday fires (POSIX rule), so this is fine.
    assert!(Cron::parse("0 0 30 2 MON").is_ok());
}

#[test]
fn next_fire_is_strictly_after() {
    check_fire_times("next_fire_is_strictly_after");
    // Sub-second instants round down first.
    let c = Cron::parse("* * * * * *").unwrap();
    let t = at("2024-01-01 10:00:00") + Duration::from_millis(400);
    assert_eq!(show(c.next_after(t).unwrap()), "2024-01-01 10:00:01");
}

#[test]
fn month_ends_and_leap_years() {
    check_fire_times("month_ends_and_leap_years");
}

#[test]
fn day_of_month_or_day_of_week() {
    check_fire_times("day_of_month_or_day_of_week");
}

#[test]
fn steps_and_lists() {
    check_fire_times("steps_and_lists");
}

#[test]
fn longest_gap_is_exact() {
    let gap = |e: &str| Cron::parse(e).unwrap().longest_gap().as_secs();
    assert_eq!(gap("* * * * * *"), 1);
    assert_eq!(gap("*/20 * * * * *"), 20);
    assert_eq!(gap("* * * * *"), 60);
    assert_eq!(gap("*/5 * * * *"), 300);
    // 10:00, 20:00: the night is the longest wait.
    assert_eq!(gap("0 10,20 * * *"), 14 * 3600);
    assert_eq!(gap("@daily"), 86_400);
    assert_eq!(gap("@weekly"), 7 * 86_400);
    // Friday 17:00 to Monday 9:00.
    assert_eq!(gap("0 9-17 * * 1-5"), (2 * 24 + 16) * 3600);
    assert_eq!(gap("@monthly"), 31 * 86_400);
    // Every 29 February: 2096 to 2104.
    assert_eq!(gap("0 0 29 2 *"), 2921 * 86_400);
}
