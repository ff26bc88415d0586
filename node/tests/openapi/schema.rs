//! A validator for the JSON Schema keywords docs/openapi.yaml uses. It refuses any
//! keyword it does not know, so a schema it cannot check fails the test instead of
//! passing unread.

use serde_json::{Map, Value};

/// Follows a local `$ref` (`#/components/...`), repeatedly.
pub fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references: {reference}"));
        value = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"));
    }
    value
}

/// Keywords that describe and do not constrain.
const ANNOTATIONS: [&str; 6] = [
    "description",
    "example",
    "title",
    "discriminator",
    "contentMediaType",
    "format",
];

/// Checks `value` against `schema`; returns what is wrong, with its JSON path.
pub fn violations(spec: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(spec, schema);
    let object = schema.as_object().expect("a schema is an object");
    let mut wrong = Vec::new();
    for (keyword, rule) in object {
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        if let Some(problem) = keyword_violation(spec, object, keyword, rule, value, at) {
            wrong.push(problem);
        }
        if keyword == "properties" || keyword == "items" || keyword == "additionalProperties" {
            wrong.extend(nested(spec, keyword, rule, object, value, at));
        }
    }
    wrong
}

fn keyword_violation(
    spec: &Value,
    schema: &Map<String, Value>,
    keyword: &str,
    rule: &Value,
    value: &Value,
    at: &str,
) -> Option<String> {
    let fails = match keyword {
        "type" => !has_type(rule, value),
        "const" => value != rule,
        "enum" => !rule.as_array().expect("enum list").contains(value),
        "required" => rule
            .as_array()
            .expect("required list")
            .iter()
            .any(|k| value.is_object() && value.get(k.as_str().expect("name")).is_none()),
        "minimum" => value
            .as_f64()
            .is_some_and(|n| n < rule.as_f64().expect("number")),
        "minLength" => value
            .as_str()
            .is_some_and(|s| s.chars().count() < size(rule)),
        "maxLength" => value
            .as_str()
            .is_some_and(|s| s.chars().count() > size(rule)),
        "maxItems" => value.as_array().is_some_and(|a| a.len() > size(rule)),
        "oneOf" => {
            let schemas = rule.as_array().expect("oneOf list");
            let fits = schemas
                .iter()
                .filter(|s| violations(spec, s, value, at).is_empty());
            fits.count() != 1
        }
        "properties" | "items" | "additionalProperties" => false,
        other => panic!("the test's validator does not know `{other}` (in {schema:?})"),
    };
    fails.then(|| format!("{at}: fails `{keyword}: {rule}` with {value}"))
}

fn size(rule: &Value) -> usize {
    rule.as_u64().expect("a count") as usize
}

fn has_type(rule: &Value, value: &Value) -> bool {
    let one = |name: &str| match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown type {other}"),
    };
    match rule {
        Value::String(name) => one(name),
        Value::Array(names) => names.iter().any(|n| one(n.as_str().expect("type name"))),
        other => panic!("bad type rule {other}"),
    }
}

fn nested(
    spec: &Value,
    keyword: &str,
    rule: &Value,
    schema: &Map<String, Value>,
    value: &Value,
    at: &str,
) -> Vec<String> {
    let mut wrong = Vec::new();
    match (keyword, value) {
        ("items", Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                wrong.extend(violations(spec, rule, item, &format!("{at}[{i}]")));
            }
        }
        ("properties", Value::Object(fields)) => {
            for (name, field_schema) in rule.as_object().expect("properties map") {
                if let Some(field) = fields.get(name) {
                    wrong.extend(violations(
                        spec,
                        field_schema,
                        field,
                        &format!("{at}.{name}"),
                    ));
                }
            }
        }
        ("additionalProperties", Value::Object(fields)) => {
            let known = schema.get("properties").and_then(Value::as_object);
            let extra = fields
                .iter()
                .filter(|(name, _)| known.is_none_or(|k| !k.contains_key(*name)));
            for (name, field) in extra {
                match rule {
                    Value::Bool(false) => wrong.push(format!("{at}.{name}: not documented")),
                    Value::Bool(true) => {}
                    schema => {
                        wrong.extend(violations(spec, schema, field, &format!("{at}.{name}")))
                    }
                }
            }
        }
        _ => {}
    }
    wrong
}
