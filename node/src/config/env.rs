//! `PORTCULLIS_*` environment variables laid over the TOML table.
//!
//! `PORTCULLIS_LISTEN` sets `listen`; a double underscore descends into a section, so
//! `PORTCULLIS_TOKENS__ACCESS_LIFETIME=10m` sets `tokens.access_lifetime`. A value is
//! read as a TOML value when it parses as one (`["a","b"]`, `30`, `true`, an inline
//! table array for `users`) and as a plain string otherwise.

use toml::{Table, Value};

use super::reader::Problem;

/// The prefix every setting variable carries.
pub const PREFIX: &str = "PORTCULLIS_";

/// Variables under the prefix that are not settings (read by the CLI itself).
const NOT_SETTINGS: &[&str] = &[
    "PORTCULLIS_CONFIG",
    "PORTCULLIS_LOG",
    "PORTCULLIS_TOKEN",
    "PORTCULLIS_NODE",
];

/// Lays every `PORTCULLIS_*` variable in `vars` over `table`; returns the paths set,
/// with the variable that set each, so problems can name the variable.
pub fn overlay(
    table: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) -> Vec<(String, String)> {
    let mut set = Vec::new();
    for (name, raw) in vars {
        if !name.starts_with(PREFIX) || NOT_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let path: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(|part| part.to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            problems.push(Problem {
                key: name,
                message: "malformed variable name".into(),
            });
            continue;
        }
        if let Err(message) = insert(table, &path, parse_value(&raw)) {
            problems.push(Problem { key: name, message });
            continue;
        }
        set.push((path.join("."), name));
    }
    set
}

fn parse_value(raw: &str) -> Value {
    let wrapped = format!("v = {raw}");
    toml::from_str::<Table>(&wrapped)
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn insert(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("path has at least one part");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(next) = entry else {
            return Err(format!("`{part}` is not a section"));
        };
        current = next;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sets_nested_keys_and_typed_values() {
        let mut table = Table::new();
        let mut problems = Vec::new();
        let set = overlay(
            &mut table,
            vars(&[
                ("PORTCULLIS_TOKENS__ACCESS_LIFETIME", "10m"),
                ("PORTCULLIS_AUDIENCES", r#"["api", "web"]"#),
                ("PORTCULLIS_LOG", "debug"),
                ("HOME", "/root"),
            ]),
            &mut problems,
        );
        assert!(problems.is_empty());
        assert_eq!(set.len(), 2);
        assert_eq!(table["tokens"]["access_lifetime"].as_str(), Some("10m"));
        assert_eq!(table["audiences"].as_array().map(Vec::len), Some(2));
        assert!(!table.contains_key("log"));
    }

    #[test]
    fn refuses_to_descend_into_a_scalar() {
        let mut table: Table = toml::from_str("listen = \"x\"").expect("valid toml");
        let mut problems = Vec::new();
        overlay(
            &mut table,
            vars(&[("PORTCULLIS_LISTEN__PORT", "1")]),
            &mut problems,
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "PORTCULLIS_LISTEN__PORT");
    }
}
