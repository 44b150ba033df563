//! The end-to-end tests of pgstream against a real PostgreSQL, one test binary: each
//! file is a module (one throwaway cluster for all of them, and one link instead of
//! one per file). `runtime_metrics` stays a binary of its own: its recorder is global
//! to the process.

#[macro_use]
mod common;
mod capture_citus;
mod capture_frontier;
mod capture_nested;
mod capture_partitions;
mod harness;
mod oracle_aggregates;
mod oracle_collisions;
mod oracle_differential;
mod oracle_immediate;
mod oracle_membership;
mod oracle_nested;
mod oracle_netting;
mod oracle_pushdown;
mod oracle_scalar;
mod oracle_schema_changes;
mod oracle_selftest;
mod oracle_srf;
mod oracle_stages;
mod oracle_subqueries;
mod oracle_surface;
mod oracle_using;
mod oracle_views;
mod recursive_seminaive;
mod runtime;
mod runtime_adaptive;
mod runtime_cascade;
mod runtime_change_filters;
mod runtime_cron;
mod runtime_drift;
mod runtime_faults;
mod runtime_field_types;
mod runtime_health;
mod runtime_idle;
mod runtime_immediate;
mod runtime_inherit;
mod runtime_names;
mod runtime_no_equality;
mod runtime_not_null;
mod runtime_on_commit;
mod runtime_owner;
mod runtime_parallel;
mod runtime_privileges;
mod runtime_replace;
mod runtime_scheduler;
mod runtime_send;
mod runtime_settings;
mod runtime_start;
mod runtime_stress;
mod runtime_subscribe;
mod runtime_unused_columns;
mod runtime_upgrade;
mod runtime_window_prefilter;
mod security_search_path;
mod security_sources;
mod tpch;
mod tutorial;
mod types_live;
