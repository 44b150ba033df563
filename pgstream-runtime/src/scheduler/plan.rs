//! The plan of a scheduler pass: the rows of the catalog query, which of them are due
//! (cron schedules are decided here), the jobs they make (an inheriting stream table
//! refreshed with its readers' group) and the jobs each waits for.

use pgstream_core::Schedule;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A stream table the catalog query returned.
#[derive(sqlx::FromRow)]
pub(super) struct DueRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) schedule: String,
    /// Last refresh (or creation), seconds since the epoch.
    pub(super) since: f64,
    /// The database's clock, seconds since the epoch.
    pub(super) now: f64,
    /// Its storage table's oid (a source of the stream tables that read it).
    pub(super) storage: Option<i64>,
    /// Whether the refresh may be left out when no source has changes: DIFFERENTIAL,
    /// populated, no full refresh pending, every frontier set.
    pub(super) quiet_skips: bool,
    /// Its sources' oids.
    pub(super) sources: Vec<i64>,
    /// Due by its own schedule (for a cron row, [`is_due`] decides).
    pub(super) due: bool,
    /// Its schedule is `inherit` and other stream tables read it: it is refreshed
    /// with them, never on its own.
    pub(super) follows_readers: bool,
}

/// What one task of a scheduler pass refreshes: one stream table, or a group of
/// inheriting stream tables read together (refreshed in one transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Job {
    /// Indices into the rows, upstream first.
    pub(super) members: Vec<usize>,
    /// Sources (oids) a group locks against writers while its members refresh.
    pub(super) lock: Vec<i64>,
}

/// The jobs of a pass: every row due by its own schedule, each in a job of its own,
/// and the inheriting stream tables they read (directly or through inheriting ones),
/// in groups: inheriting stream tables read together by some stream table are one
/// group (the transitive closure of that), refreshed together whenever one of them
/// is needed, so that a reader never sees two of them at different states of their
/// sources. In the order of the rows (depth, id) of each job's first member.
/// With `only`, that row is the one due, whatever its schedule.
pub(super) fn plan_jobs(rows: &[DueRow], only: Option<i64>) -> Vec<Job> {
    let by_storage: HashMap<i64, usize> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.storage.map(|s| (s, i)))
        .collect();
    // The inheriting stream tables each row needs refreshed before it.
    let needs: Vec<Vec<usize>> = (0..rows.len())
        .map(|i| {
            let mut found: Vec<usize> = Vec::new();
            let mut stack = vec![i];
            while let Some(k) = stack.pop() {
                for s in &rows[k].sources {
                    if let Some(&j) = by_storage.get(s) {
                        if j != i && rows[j].follows_readers && !found.contains(&j) {
                            found.push(j);
                            stack.push(j);
                        }
                    }
                }
            }
            found
        })
        .collect();
    // Groups: union of every row's `needs`.
    let mut parent: Vec<usize> = (0..rows.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for n in &needs {
        for w in n.windows(2) {
            let (a, b) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut selected = vec![false; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        let due = match only {
            Some(id) => r.id == id,
            None => r.due && is_due(&r.name, &r.schedule, r.since, r.now),
        };
        if due && !r.follows_readers {
            selected[i] = true;
            for &j in &needs[i] {
                selected[j] = true;
            }
        }
    }
    let roots: HashSet<usize> = (0..rows.len())
        .filter(|&j| selected[j] && rows[j].follows_readers)
        .map(|j| root(&mut parent, j))
        .collect();
    for j in 0..rows.len() {
        if rows[j].follows_readers && roots.contains(&root(&mut parent, j)) {
            selected[j] = true;
        }
    }
    let mut jobs: Vec<Job> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for i in (0..rows.len()).filter(|&i| selected[i]) {
        if !rows[i].follows_readers {
            jobs.push(Job {
                members: vec![i],
                lock: Vec::new(),
            });
            continue;
        }
        let r = root(&mut parent, i);
        match group_of.get(&r) {
            Some(&g) => jobs[g].members.push(i),
            None => {
                group_of.insert(r, jobs.len());
                jobs.push(Job {
                    members: vec![i],
                    lock: Vec::new(),
                });
            }
        }
    }
    // A group whose members read tables from outside it at two or more places (a
    // diamond) locks those tables against writers while it refreshes, so that all
    // its members see one state of them; a chain needs no lock.
    for job in jobs.iter_mut().filter(|j| j.members.len() > 1) {
        let inside: HashSet<i64> = job
            .members
            .iter()
            .filter_map(|&m| rows[m].storage)
            .collect();
        let readers_outside = job
            .members
            .iter()
            .filter(|&&m| rows[m].sources.iter().any(|s| !inside.contains(s)))
            .count();
        if readers_outside >= 2 {
            let mut lock: Vec<i64> = job
                .members
                .iter()
                .flat_map(|&m| rows[m].sources.iter().copied())
                .filter(|s| !inside.contains(s))
                .collect();
            lock.sort_unstable();
            lock.dedup();
            job.lock = lock;
        }
    }
    jobs
}

/// For each job, the jobs it reads from (a member reads a member's storage table).
pub(super) fn job_dependencies(rows: &[DueRow], jobs: &[Job]) -> Vec<Vec<usize>> {
    let job_of_storage: HashMap<i64, usize> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| {
            job.members
                .iter()
                .filter_map(move |&m| rows[m].storage.map(|s| (s, j)))
        })
        .collect();
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            let mut up: Vec<usize> = job
                .members
                .iter()
                .flat_map(|&m| rows[m].sources.iter())
                .filter_map(|s| job_of_storage.get(s).copied())
                .filter(|&j| j != i)
                .collect();
            up.sort_unstable();
            up.dedup();
            up
        })
        .collect()
}

/// The jobs a pass leaves for a later one, given which stream tables an earlier
/// pass is still refreshing (`in_flight`, by id): a job with such a member, a job
/// that reads from a job left (its window would miss that job's new rows), and a group
/// of inheriting stream tables whose readers in this pass are all left (it is
/// refreshed for its readers only: refreshing it now would refresh it more often than
/// them).
pub(super) fn left_for_later(
    rows: &[DueRow],
    jobs: &[Job],
    upstream: &[Vec<usize>],
    in_flight: impl Fn(i64) -> bool,
) -> Vec<bool> {
    let mut left: Vec<bool> = jobs
        .iter()
        .map(|j| j.members.iter().any(|&m| in_flight(rows[m].id)))
        .collect();
    // Nothing in flight (the usual pass): nothing is left. Every pass calls this, so it
    // stays linear in the jobs and their edges below (thousands of due stream tables).
    if !left.contains(&true) {
        return left;
    }
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (k, up) in upstream.iter().enumerate() {
        for &j in up {
            readers[j].push(k);
        }
    }
    let inheriting: Vec<bool> = jobs
        .iter()
        .map(|j| j.members.iter().all(|&m| rows[m].follows_readers))
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..jobs.len() {
            if left[i] {
                continue;
            }
            let reads_left = upstream[i].iter().any(|&j| left[j]);
            let readers_all_left =
                inheriting[i] && !readers[i].is_empty() && readers[i].iter().all(|&k| left[k]);
            if reads_left || readers_all_left {
                left[i] = true;
                changed = true;
            }
        }
    }
    left
}

/// Whether a row the query returned is due: cron rows are decided here (`since` is
/// the last refresh, or the creation, and `now` the database's clock, both in seconds
/// since the epoch); every other row the query returned is due.
fn is_due(name: &str, schedule: &str, since: f64, now: f64) -> bool {
    match schedule.parse::<Schedule>() {
        Ok(s) if s.is_cron() => s.is_due(instant(since), instant(now)),
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(stream_table = %name, error = %e, "unreadable schedule, not refreshed");
            false
        }
    }
}

/// An instant from seconds since the epoch.
fn instant(secs: f64) -> SystemTime {
    if secs >= 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(secs)
    } else {
        UNIX_EPOCH - Duration::from_secs_f64(-secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, storage: i64, sources: &[i64], follows_readers: bool) -> DueRow {
        DueRow {
            id,
            name: format!("st{id}"),
            schedule: if follows_readers { "inherit" } else { "1s" }.into(),
            since: 0.0,
            now: 0.0,
            storage: Some(storage),
            quiet_skips: true,
            sources: sources.to_vec(),
            due: !follows_readers,
            follows_readers,
        }
    }

    /// A chain a -> b -> c with a and b inheriting, and d reading a: while c is
    /// refreshed by an earlier pass, a and b are left too (they are refreshed for c),
    /// unless another reader in the pass (d) needs them.
    #[test]
    fn inheriting_groups_wait_for_their_readers_in_flight() {
        let chain = [
            row(1, 101, &[500], true),
            row(2, 102, &[101], true),
            row(3, 103, &[102], false),
        ];
        let jobs = plan_jobs(&chain, None);
        let up = job_dependencies(&chain, &jobs);
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(
            left_for_later(&chain, &jobs, &up, |id| id == 3),
            vec![true, true]
        );
        assert_eq!(
            left_for_later(&chain, &jobs, &up, |_| false),
            vec![false, false]
        );
        // The group in flight: its reader waits too.
        assert_eq!(
            left_for_later(&chain, &jobs, &up, |id| id == 1),
            vec![true, true]
        );

        let shared = [
            row(1, 101, &[500], true),
            row(2, 102, &[101], true),
            row(3, 103, &[102], false),
            row(4, 104, &[101], false),
        ];
        let jobs = plan_jobs(&shared, None);
        let up = job_dependencies(&shared, &jobs);
        let left = left_for_later(&shared, &jobs, &up, |id| id == 3);
        let of = |id: i64| {
            jobs.iter()
                .position(|j| j.members.iter().any(|&m| shared[m].id == id))
                .unwrap()
        };
        assert!(left[of(3)]);
        assert!(
            !left[of(1)] && !left[of(2)] && !left[of(4)],
            "{jobs:?} {left:?}"
        );
    }

    #[test]
    fn cron_rows_are_due_after_a_fire_time() {
        // 1_700_000_000 is 2023-11-14 22:13:20 UTC; `*/5` fires next at 22:15:00.
        let t = 1_700_000_000.0;
        assert!(!is_due("a", "*/5 * * * *", t, t + 99.9));
        assert!(is_due("a", "*/5 * * * *", t, t + 100.0));
        assert!(is_due("a", "* * * * * *", t + 0.5, t + 1.0));
        assert!(!is_due("a", "* * * * * *", t + 0.5, t + 0.9));
        assert!(!is_due("a", "0 0 1 1 *", t, t + 3600.0));
        // The query already decided for durations.
        assert!(is_due("a", "30s", t, t));
        assert!(!is_due("a", "not a schedule", t, t + 1e6));
    }
}
