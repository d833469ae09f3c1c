//! Which tables `store copy` moves, in what order, and their columns as both databases
//! have them.
//!
//! The list is written out (parents before children, for the foreign keys), and checked
//! against both schemas twice: by a unit test on the migration files, and at run time on
//! the databases themselves. A table added to the schema and not here stops the copy
//! with its name instead of being left behind.

use sqlx::{PgConnection, SqliteConnection};

use super::CopyError;

/// Every table of the store, parents first, with the columns of its primary key (the
/// order in which both sides are read when the copy is compared).
pub(super) const TABLES: &[(&str, &[&str])] = &[
    ("mailboxes", &["id"]),
    ("grants", &["id"]),
    ("folders", &["id"]),
    ("subscriptions", &["mailbox_id", "name"]),
    ("lifecycle_notices", &["mailbox_id", "kind", "cycle"]),
    ("lifecycle_lease", &["name"]),
    ("bodies", &["id"]),
    ("sort_keys", &["body_id"]),
    ("body_structure", &["body_id"]),
    ("messages", &["id"]),
    ("expunged", &["folder_id", "uid"]),
    ("queue", &["id"]),
    ("queue_recipients", &["id"]),
    ("audit", &["id"]),
    ("mailbox_events", &["id"]),
    ("traffic", &["day"]),
    ("uidvalidity_issued", &["id"]),
    ("access_epoch", &["id"]),
];

/// Tables whose migrations write their only row: the copy replaces it, and it does not
/// make a database count as used.
const SINGLETONS: &[&str] = &["uidvalidity_issued", "access_epoch"];

/// Columns only PostgreSQL has: several nodes need them, one SQLite process does not.
/// Copied rows leave them empty (an outbound message nobody holds a lease on, that any
/// node may take).
const POSTGRES_ONLY: &[(&str, &str)] = &[("queue", "lease_holder"), ("queue", "lease_until")];

/// The migrations' own bookkeeping, not the store's data.
const MIGRATIONS: &str = "_sqlx_migrations";

/// Tables derived from the copied ones and not copied: the body text index, an FTS5
/// table (with its `body_search_*` shadow tables) on SQLite and a plain one on
/// PostgreSQL. The target indexes each body the first time a search meets it.
const DERIVED: &[&str] = &["body_search"];

fn derived(name: &str) -> bool {
    DERIVED.iter().any(|d| {
        name == *d
            || name
                .strip_prefix(d)
                .is_some_and(|rest| rest.starts_with('_'))
    })
}

/// How a column's values are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int8,
    Int4,
    /// BOOLEAN on PostgreSQL, 0 or 1 on SQLite.
    Bool,
    Text,
    Blob,
}

#[derive(Debug)]
pub(super) struct Column {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub(super) struct Table {
    pub name: &'static str,
    pub key: &'static [&'static str],
    pub columns: Vec<Column>,
    /// Its identity column on PostgreSQL, whose sequence must move past the copied ids.
    pub identity: Option<String>,
    pub singleton: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The tables to copy, with their columns; an error when either database has a table or
/// a column the other lacks, or one this module does not know.
pub(super) async fn describe(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
) -> Result<Vec<Table>, CopyError> {
    let in_source: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut *source)
    .await
    .map_err(CopyError::source)?;
    let in_target: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut *target)
    .await
    .map_err(CopyError::target)?;
    for (side, names) in [("SQLite", &in_source), ("PostgreSQL", &in_target)] {
        if let Some(unknown) = unknown_table(names.iter().map(String::as_str)) {
            return Err(CopyError::Schema(format!(
                "the {side} store has a table `{unknown}` that store copy does not know"
            )));
        }
    }
    let mut tables = Vec::with_capacity(TABLES.len());
    for &(name, key) in TABLES {
        let mut columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity::text
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = $1
              ORDER BY ordinal_position",
        )
        .bind(name)
        .fetch_all(&mut *target)
        .await
        .map_err(CopyError::target)?;
        columns.retain(|(c, _, _)| !POSTGRES_ONLY.contains(&(name, c.as_str())));
        let mut source_columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                .bind(name)
                .fetch_all(&mut *source)
                .await
                .map_err(CopyError::source)?;
        let mut target_columns: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
        source_columns.sort();
        target_columns.sort();
        if source_columns.is_empty() || source_columns != target_columns {
            return Err(CopyError::Schema(format!(
                "table `{name}` has columns {source_columns:?} in SQLite and {target_columns:?} \
                 in PostgreSQL"
            )));
        }
        let mut table = Table {
            name,
            key,
            columns: Vec::with_capacity(columns.len()),
            identity: None,
            singleton: SINGLETONS.contains(&name),
        };
        for (column, data_type, identity) in columns {
            let kind = match data_type.as_str() {
                "bigint" => Kind::Int8,
                "integer" => Kind::Int4,
                "boolean" => Kind::Bool,
                "text" => Kind::Text,
                "bytea" => Kind::Blob,
                other => {
                    return Err(CopyError::Schema(format!(
                        "column {name}.{column} has type {other}, which store copy does not know"
                    )));
                }
            };
            if identity == "YES" {
                table.identity = Some(column.clone());
            }
            table.columns.push(Column { name: column, kind });
        }
        tables.push(table);
    }
    Ok(tables)
}

/// The first of `names` that is neither a table of `TABLES`, a derived one nor the
/// migrations' own.
fn unknown_table<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names.find(|n| *n != MIGRATIONS && !derived(n) && !TABLES.iter().any(|(t, _)| t == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table the migrations of `folder` create.
    fn created_tables(folder: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        let mut tables = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                let line = line.trim();
                let created = line
                    .strip_prefix("CREATE TABLE ")
                    .or_else(|| line.strip_prefix("CREATE VIRTUAL TABLE "));
                if let Some(rest) = created {
                    let name = rest.split_whitespace().next().unwrap();
                    tables.push(name.to_owned());
                }
            }
        }
        tables.sort();
        tables
    }

    #[test]
    fn every_table_of_both_schemas_is_copied() {
        let mut listed: Vec<String> = TABLES
            .iter()
            .map(|(t, _)| *t)
            .chain(DERIVED.iter().copied())
            .map(str::to_owned)
            .collect();
        listed.sort();
        assert_eq!(created_tables("schema/sqlite"), listed);
        assert_eq!(created_tables("schema/postgres"), listed);
    }

    #[test]
    fn a_table_nobody_listed_is_named() {
        assert_eq!(unknown_table(["messages", MIGRATIONS].into_iter()), None);
        let index = ["body_search", "body_search_data", "body_search_docsize"];
        assert_eq!(unknown_table(index.into_iter()), None);
        assert_eq!(
            unknown_table(["body_searches"].into_iter()),
            Some("body_searches")
        );
        assert_eq!(
            unknown_table(["messages", "attachments"].into_iter()),
            Some("attachments")
        );
    }
}
