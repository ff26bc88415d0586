//! Reading docs/api.md as GitHub renders it: the route table, the sections under each
//! heading (fenced code is not searched for headings), the statuses a text mentions and
//! the JSON examples.

use std::collections::BTreeSet;

use serde_json::Value;

use super::METHODS;

/// The route table at the top of api.md, one entry per method:
/// `| GET, POST | [`/path`](#anchor) | …` gives (`GET`, `/path`, `anchor`) and so on.
pub fn api_md_table(text: &str) -> Vec<(String, String, String)> {
    let mut routes = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(methods), Some(link)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some((path, anchor)) = link
            .strip_prefix("[`")
            .and_then(|l| l.strip_suffix(')'))
            .and_then(|l| l.split_once("`](#"))
        else {
            continue;
        };
        let methods: Vec<String> = match *methods {
            "any" => METHODS.iter().map(|m| m.to_uppercase()).collect(),
            listed => listed.split(',').map(|m| m.trim().to_owned()).collect(),
        };
        for method in methods {
            routes.push((method, path.to_owned(), anchor.to_owned()));
        }
    }
    assert!(routes.len() >= 10, "api.md has its route table: {routes:?}");
    routes
}

/// A heading of api.md with the text under it.
pub struct Section {
    /// GitHub's anchor: lower case, punctuation dropped, spaces to hyphens.
    pub anchor: String,
    /// Everything up to the next heading of the same or a higher level.
    pub body: String,
    /// For a `###` heading, the text of its `##` section before its first subheading.
    pub parent_intro: String,
}

pub fn sections(text: &str) -> Vec<Section> {
    let mut headings = Vec::new();
    let mut in_code = false;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let level = line.chars().take_while(|c| *c == '#').count();
            headings.push((i, level, anchor_of(line[level..].trim())));
        }
    }
    let end_of = |k: usize, any: bool| {
        let (_, level, _) = headings[k];
        headings[k + 1..]
            .iter()
            .find(|(_, l, _)| any || *l <= level)
            .map_or(lines.len(), |(i, _, _)| *i)
    };
    let text_of = |from: usize, to: usize| lines[from..to].join("\n");
    (0..headings.len())
        .map(|k| {
            let (start, level, anchor) = headings[k].clone();
            let parent = headings[..k].iter().rposition(|(_, l, _)| *l < level);
            let parent_intro = match parent {
                Some(p) if level == 3 => text_of(headings[p].0, end_of(p, true)),
                _ => String::new(),
            };
            Section {
                anchor,
                body: text_of(start, end_of(k, false)),
                parent_intro,
            }
        })
        .collect()
}

pub fn anchor_of(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every HTTP status (a separate number 100-599) the text mentions.
pub fn statuses(text: &str) -> BTreeSet<u16> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|t| t.len() == 3)
        .filter_map(|t| t.parse().ok())
        .filter(|s| (100..600).contains(s))
        .collect()
}

/// The ```json blocks of a section, each of which must be JSON.
pub fn json_blocks(body: &str) -> Vec<Value> {
    body.split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .map(|block| {
            serde_json::from_str(block)
                .unwrap_or_else(|e| panic!("a json block in api.md is not JSON ({e}): {block}"))
        })
        .collect()
}

/// The statuses of the error-table rows (`| 409 | ...`) in a section.
pub fn error_rows(body: &str) -> BTreeSet<u16> {
    body.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter_map(|t| t.parse().ok())
        .collect()
}

#[test]
pub fn api_md_sections_are_read_like_github_renders_them() {
    let text =
        "# T\n## `GET /a`\nintro 201\n### `POST /a/b`\n| 409 | x |\n```sh\n# not\n```\n## B\n";
    let sections = sections(text);
    let anchors: Vec<&str> = sections.iter().map(|s| s.anchor.as_str()).collect();
    assert_eq!(anchors, ["t", "get-a", "post-ab", "b"]);
    assert!(
        sections[1].body.contains("409"),
        "a section holds its subsections"
    );
    assert_eq!(sections[2].parent_intro, "## `GET /a`\nintro 201");
    assert_eq!(error_rows(&sections[2].body), BTreeSet::from([409]));
    assert_eq!(
        statuses("`201`, 1796318700000 and 2xx"),
        BTreeSet::from([201])
    );
}
