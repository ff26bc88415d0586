//! A TOML table reader that collects every problem instead of stopping at the first.
//!
//! Each accessor removes the key it reads, so whatever is left at the end is an unknown
//! key and is reported as such: a misspelt setting never silently falls back to its
//! default. Every key asked for, present or not, is noted too, which is how
//! [`super::known_keys`] lists the settings the parser accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use toml::{Table, Value};

/// One thing wrong with the configuration, named by its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `tokens.access_lifetime` or `clients[2].id`.
    pub key: String,
    /// What is wrong, without echoing secret values.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Reads typed values out of one table, recording problems under a key prefix.
pub struct Reader<'p> {
    table: Table,
    prefix: String,
    problems: &'p mut Vec<Problem>,
    /// Every key path asked for, with array indices blanked (`clients[].id`).
    asked: &'p mut BTreeSet<String>,
}

impl<'p> Reader<'p> {
    /// A reader over `table` whose keys are reported as `prefix.key`; the paths of the
    /// keys it is asked for are added to `asked`.
    pub fn new(
        table: Table,
        prefix: &str,
        problems: &'p mut Vec<Problem>,
        asked: &'p mut BTreeSet<String>,
    ) -> Self {
        Self {
            table,
            prefix: prefix.to_owned(),
            problems,
            asked,
        }
    }

    /// The full path of `key` for error messages.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Whether a problem was already recorded for `key`.
    pub fn has_problem(&self, key: &str) -> bool {
        let path = self.path(key);
        self.problems.iter().any(|p| p.key == path)
    }

    /// Records a problem with `key`.
    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        let key = self.path(key);
        self.problems.push(Problem {
            key,
            message: message.into(),
        });
    }

    /// Whether `key` is present (and not yet read).
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.asked.insert(generic_path(&self.path(key)));
        self.table.remove(key)
    }

    /// A string setting; `None` if absent or of the wrong type (the latter is recorded).
    pub fn opt_string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            other => {
                self.problem(
                    key,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A string setting that must be present.
    pub fn required_string(&mut self, key: &str) -> Option<String> {
        let value = self.opt_string(key);
        if value.is_none() && !self.problems.iter().any(|p| p.key == self.path(key)) {
            self.problem(key, "is required");
        }
        value
    }

    /// A list of strings; a single comma-separated string is accepted too, which is
    /// how lists arrive from environment variables.
    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        match self.take(key)? {
            Value::String(s) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s),
                        other => self.problem(
                            &format!("{key}[{i}]"),
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                Some(out)
            }
            other => {
                let found = other.type_str();
                self.problem(key, format!("expected a list of strings, found {found}"));
                None
            }
        }
    }

    /// A duration written as `"90s"`, `"5m"`, `"24h"`, `"30d"` or a number of seconds.
    pub fn duration(&mut self, key: &str, default: Duration) -> Duration {
        let parsed = match self.take(key) {
            None => return default,
            Some(Value::Integer(secs)) if secs >= 0 => Ok(Duration::from_secs(secs as u64)),
            Some(Value::String(s)) => parse_duration(&s),
            Some(other) => Err(format!("expected a duration, found {}", other.type_str())),
        };
        parsed.unwrap_or_else(|message| {
            self.problem(key, message);
            default
        })
    }

    /// A non-negative integer setting.
    pub fn count(&mut self, key: &str, default: u64) -> u64 {
        match self.take(key) {
            None => default,
            Some(Value::Integer(n)) if n >= 0 => n as u64,
            Some(Value::String(s)) if s.parse::<u64>().is_ok() => s.parse().unwrap_or(default),
            Some(other) => {
                self.problem(
                    key,
                    format!("expected a non-negative integer, found {other}"),
                );
                default
            }
        }
    }

    /// A boolean setting.
    pub fn flag(&mut self, key: &str, default: bool) -> bool {
        match self.take(key) {
            None => default,
            Some(Value::Boolean(b)) => b,
            Some(other) => {
                self.problem(key, format!("expected true or false, found {other}"));
                default
            }
        }
    }

    /// A number written as an integer or a float, at least `min`.
    pub fn ratio(&mut self, key: &str, default: f64, min: f64) -> f64 {
        let value = match self.take(key) {
            None => return default,
            Some(Value::Float(f)) => f,
            Some(Value::Integer(n)) => n as f64,
            Some(other) => {
                self.problem(key, format!("expected a number, found {other}"));
                return default;
            }
        };
        if !(value.is_finite() && value >= min) {
            self.problem(key, format!("must be a number of at least {min}"));
            return default;
        }
        value
    }

    /// A table of names to non-negative integers, e.g. `{ "billing" = 1200 }`.
    pub fn count_map(&mut self, key: &str) -> BTreeMap<String, u64> {
        let table = match self.take(key) {
            None => return BTreeMap::new(),
            Some(Value::Table(table)) => table,
            Some(other) => {
                let found = other.type_str();
                self.problem(key, format!("expected a table of counts, found {found}"));
                return BTreeMap::new();
            }
        };
        let mut out = BTreeMap::new();
        for (name, value) in table {
            match value {
                Value::Integer(n) if n >= 0 => {
                    out.insert(name, n as u64);
                }
                other => self.problem(
                    &format!("{key}.{name}"),
                    format!("expected a non-negative integer, found {other}"),
                ),
            }
        }
        out
    }

    /// An array of tables, each handed to `read` with its own reader.
    pub fn table_array<T>(
        &mut self,
        key: &str,
        mut read: impl FnMut(&mut Reader<'_>) -> Option<T>,
    ) -> Vec<T> {
        let items = match self.take(key) {
            None => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                let found = other.type_str();
                self.problem(key, format!("expected an array of tables, found {found}"));
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = self.path(&format!("{key}[{i}]"));
            let Value::Table(table) = item else {
                self.problems.push(Problem {
                    key: path,
                    message: "expected a table".into(),
                });
                continue;
            };
            let mut reader = Reader::new(table, &path, self.problems, self.asked);
            let value = read(&mut reader);
            reader.finish();
            out.extend(value);
        }
        out
    }

    /// A nested table read by `read`; absent tables read as empty.
    pub fn section<T>(&mut self, key: &str, read: impl FnOnce(&mut Reader<'_>) -> T) -> T {
        let table = match self.take(key) {
            Some(Value::Table(t)) => t,
            None => Table::new(),
            Some(other) => {
                let found = other.type_str();
                self.problem(key, format!("expected a table, found {found}"));
                Table::new()
            }
        };
        let path = self.path(key);
        let mut reader = Reader::new(table, &path, self.problems, self.asked);
        let value = read(&mut reader);
        reader.finish();
        value
    }

    /// Reports every key nobody asked for.
    pub fn finish(self) {
        for key in self.table.keys() {
            let key = if self.prefix.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.prefix)
            };
            self.problems.push(Problem {
                key,
                message: "unknown setting".into(),
            });
        }
    }
}

/// `clients[2].id` → `clients[].id`: the setting, whichever array element it is in.
fn generic_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push(c);
            }
            ']' => {
                in_index = false;
                out.push(c);
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Parses `"250ms"`, `"90s"`, `"5m"`, `"24h"`, `"30d"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (use e.g. 90s, 5m, 24h, 30d)"))?;
    let secs_per_unit = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "ms" => return Ok(Duration::from_millis(amount)),
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit (use ms, s, m, h or d)"
            ))
        }
    };
    amount
        .checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn reports_unknown_and_mistyped_keys_together() {
        let table: Table = toml::from_str("a = 1\nb = \"x\"\ntypo = true").expect("valid toml");
        let mut problems = Vec::new();
        let mut asked = BTreeSet::new();
        let mut reader = Reader::new(table, "top", &mut problems, &mut asked);
        assert_eq!(reader.opt_string("a"), None);
        assert_eq!(reader.opt_string("b").as_deref(), Some("x"));
        reader.finish();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["top.a", "top.typo"]);
    }

    #[test]
    fn notes_every_key_asked_for_with_indices_blanked() {
        let table: Table = toml::from_str("[[items]]\nname = \"x\"\n[[items]]\n").expect("toml");
        let mut problems = Vec::new();
        let mut asked = BTreeSet::new();
        let mut reader = Reader::new(table, "", &mut problems, &mut asked);
        reader.table_array("items", |item| item.opt_string("name"));
        reader.section("absent", |s| s.count("size", 1));
        reader.finish();
        let asked: Vec<_> = asked.iter().map(String::as_str).collect();
        assert_eq!(asked, ["absent", "absent.size", "items", "items[].name"]);
    }
}
