//! `docs/openapi.yaml` and `docs/api.md` held to the node: the documented routes are
//! exactly the served ones (`portcullis::http::routes()`), every documented operation
//! answers a real node with a status it documents, and the bodies and headers of those
//! answers, and of the key routes' error answers, match the documented schemas.
//!
//! api.md is held to the same document: its route table lists the served routes, each
//! linked section mentions the statuses the document gives the operation (and its error
//! tables list no others), and its JSON examples match documented response schemas.
//! `openapi/schema.rs` checks values against schemas, `openapi/markdown.rs` reads api.md.

mod common;
#[path = "openapi/markdown.rs"]
mod markdown;
#[path = "openapi/schema.rs"]
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;

use common::*;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

use markdown::{api_md_table, error_rows, json_blocks, sections, statuses};
use schema::{resolve, violations};

/// The operations a path item may hold, in OpenAPI's order.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A documented or served operation: upper-case method and OpenAPI path template.
type Op = (String, String);

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("docs/openapi.yaml is JSON-compatible YAML")
}

fn api_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
    std::fs::read_to_string(path).expect("docs/api.md is readable")
}

fn documented(spec: &Value) -> BTreeSet<Op> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// `/bans/{address:.+}` → `/bans/{address}`: the regex of each segment is dropped.
fn template(pattern: &str) -> String {
    let mut out = String::new();
    let (mut in_param, mut in_regex) = (false, false);
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            '}' => {
                (in_param, in_regex) = (false, false);
                out.push(c);
            }
            ':' if in_param => in_regex = true,
            _ if in_regex => {}
            _ => out.push(c),
        }
    }
    out
}

fn served() -> BTreeSet<Op> {
    portcullis::http::routes()
        .into_iter()
        .flat_map(|route| {
            let path = template(route.pattern);
            let methods: Vec<String> = match route.method {
                Some(method) => vec![method.as_str().to_owned()],
                None => METHODS.iter().map(|m| m.to_uppercase()).collect(),
            };
            methods.into_iter().map(move |m| (m, path.clone()))
        })
        .collect()
}

fn assert_same(what: &str, left: &BTreeSet<Op>, right: &BTreeSet<Op>) {
    let missing: Vec<_> = right.difference(left).collect();
    let extra: Vec<_> = left.difference(right).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: served but not listed {missing:?}; listed but not served {extra:?}"
    );
}

#[test]
fn path_patterns_become_openapi_templates() {
    assert_eq!(
        template("/admin/v1/bans/{address:.+}"),
        "/admin/v1/bans/{address}"
    );
    assert_eq!(template("/v1/check/{path:.*}"), "/v1/check/{path}");
    assert_eq!(template("/a/{kind}/{id}"), "/a/{kind}/{id}");
    assert_eq!(template("/plain"), "/plain");
}

#[test]
fn every_served_route_is_in_the_openapi_document_and_nothing_else() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_same("docs/openapi.yaml", &documented(&spec), &served());
}

#[test]
fn every_served_route_is_in_the_api_md_table_and_nothing_else() {
    let text = api_md();
    let listed: BTreeSet<Op> = api_md_table(&text)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    assert_same("docs/api.md", &listed, &served());
}

#[test]
fn api_md_and_the_openapi_document_agree_on_each_operations_statuses() {
    let spec = spec();
    let text = api_md();
    let sections = sections(&text);
    let find = |anchor: &str| {
        sections
            .iter()
            .find(|s| s.anchor == anchor)
            .unwrap_or_else(|| panic!("docs/api.md links to #{anchor}, which no heading has"))
    };
    let conventions = &find("conventions").body;
    let mut by_anchor: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for (method, path, anchor) in api_md_table(&text) {
        let section = find(&anchor);
        let responses = operation(&spec, &method, &path)["responses"]
            .as_object()
            .expect("responses");
        let documented: BTreeSet<u16> = responses
            .keys()
            .map(|k| k.parse().expect("a status code"))
            .collect();
        let prose = statuses(&format!(
            "{}{}{conventions}",
            section.body, section.parent_intro
        ));
        let unmentioned: Vec<_> = documented.difference(&prose).collect();
        if !unmentioned.is_empty() {
            disagreements.push(format!(
                "{method} {path}: openapi.yaml documents {unmentioned:?}, api.md #{anchor} not"
            ));
        }
        by_anchor.entry(anchor).or_default().extend(documented);
    }
    for (anchor, documented) in by_anchor {
        let rows = error_rows(&find(&anchor).body);
        let extra: Vec<_> = rows.difference(&documented).collect();
        if !extra.is_empty() {
            disagreements.push(format!(
                "api.md #{anchor} lists statuses {extra:?} that openapi.yaml does not document"
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn api_md_json_examples_match_the_documented_schemas() {
    let spec = spec();
    let text = api_md();
    let sections = sections(&text);
    let find = |anchor: &str| sections.iter().find(|s| s.anchor == anchor);
    let mut checked = 0;
    let error = json!({"$ref": "#/components/schemas/Error"});
    let conventions = find("conventions").expect("a Conventions section");
    for example in json_blocks(&conventions.body) {
        assert!(
            violations(&spec, &error, &example, "$").is_empty(),
            "{example}"
        );
        checked += 1;
    }
    let mut schemas: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (method, path, anchor) in api_md_table(&text) {
        let responses = operation(&spec, &method, &path)["responses"].as_object();
        let documented = responses
            .into_iter()
            .flatten()
            .map(|(_, r)| resolve(&spec, r));
        let bodies = documented
            .filter_map(|r| r["content"].as_object())
            .flatten();
        let entry = schemas.entry(anchor).or_default();
        entry.extend(bodies.map(|(_, media)| &media["schema"]));
    }
    for (anchor, candidates) in schemas {
        let section = find(&anchor).expect("a linked section");
        for example in json_blocks(&section.body) {
            let fits = candidates
                .iter()
                .any(|schema| violations(&spec, schema, &example, "$").is_empty());
            assert!(
                fits,
                "api.md #{anchor}: no documented response has this shape: {example}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} JSON examples in api.md");
}

#[test]
fn the_validator_refuses_what_the_schemas_refuse() {
    let spec = spec();
    let error = json!({"$ref": "#/components/schemas/BearerError"});
    let good = json!({"error": "invalid_token", "error_description": "no bearer token"});
    assert!(violations(&spec, &error, &good, "$").is_empty());
    for bad in [
        json!({"error": "invalid_token"}),
        json!({"error": "other", "error_description": "x"}),
        json!({"error": "invalid_token", "error_description": "x", "extra": 1}),
        json!({"error": 7, "error_description": "x"}),
        json!("text"),
    ] {
        assert!(!violations(&spec, &error, &bad, "$").is_empty(), "{bad}");
    }
    let key = json!({"$ref": "#/components/schemas/Key"});
    let mut record = json!({"owner": "n", "kid": "k", "phase": "next", "activate_ms": 1,
                            "retire_ms": null, "expire_ms": 2});
    assert!(violations(&spec, &key, &record, "$").is_empty());
    record["retire_ms"] = json!("soon");
    assert!(!violations(&spec, &key, &record, "$").is_empty());
}

#[test]
fn request_examples_match_their_own_schemas() {
    let spec = spec();
    let mut seen = 0;
    for (method, path) in documented(&spec) {
        let op = operation(&spec, &method, &path);
        let Some(body) = op.get("requestBody").map(|b| resolve(&spec, b)) else {
            continue;
        };
        for (media, content) in body["content"].as_object().expect("content") {
            let example = content
                .get("example")
                .unwrap_or_else(|| panic!("{method} {path} {media} has no example"));
            let wrong = violations(&spec, &content["schema"], example, "$");
            assert!(wrong.is_empty(), "{method} {path}: {wrong:?}");
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} request bodies documented");
}

// --- the document against a running node ---------------------------------------------

fn operation<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let item = &spec["paths"][path];
    let op = &item[method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

/// The documented response for `status`, or a failure naming what the node answered.
fn documented_response<'a>(spec: &'a Value, op: &'a Value, status: u16, what: &str) -> &'a Value {
    let responses = op["responses"].as_object().expect("responses");
    let Some(response) = responses.get(&status.to_string()) else {
        let listed: Vec<&String> = responses.keys().collect();
        panic!("{what} answered {status}, which it does not document (documents {listed:?})");
    };
    resolve(spec, response)
}

/// Asserts that `response` is one the document allows for `method path`: a documented
/// status, its required headers, its media type and a body matching its schema.
fn conforms(spec: &Value, method: &str, path: &str, response: Response) -> (u16, Value) {
    let what = format!("{method} {path}");
    let status = response.status().as_u16();
    let documented = documented_response(spec, operation(spec, method, path), status, &what);
    for (name, header) in documented["headers"].as_object().into_iter().flatten() {
        let header = resolve(spec, header);
        let Some(value) = response.headers().get(name.as_str()) else {
            assert!(
                header["required"] != true,
                "{what} {status} lacks the documented header {name}"
            );
            continue;
        };
        let value = Value::String(value.to_str().expect("an ASCII header").to_owned());
        let wrong = violations(spec, &header["schema"], &value, name);
        assert!(wrong.is_empty(), "{what} {status}: {wrong:?}");
    }
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
    let text = response.text().expect("body is readable");
    let Some(content) = documented.get("content").and_then(Value::as_object) else {
        assert!(
            text.is_empty(),
            "{what} {status} documents no body, got {text}"
        );
        return (status, Value::Null);
    };
    let media = media.unwrap_or_else(|| panic!("{what} {status} has no content type"));
    let Some(entry) = content.get(&media) else {
        panic!(
            "{what} {status} answered {media}, documented {:?}",
            content.keys()
        );
    };
    if !media.ends_with("json") || method == "HEAD" {
        return (status, Value::Null);
    }
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what} {status} body is not JSON ({e}): {text}"));
    let wrong = violations(spec, &entry["schema"], &body, "$");
    assert!(wrong.is_empty(), "{what} {status}: {wrong:?}\n{body}");
    (status, body)
}

/// A concrete URL for a path template, filled with the documented parameter examples.
fn concrete(spec: &Value, method: &str, path: &str) -> String {
    let item = &spec["paths"][path];
    let op = operation(spec, method, path);
    let mut url = path.to_owned();
    let params = [&item["parameters"], &op["parameters"]];
    for param in params.iter().filter_map(|p| p.as_array()).flatten() {
        let param = resolve(spec, param);
        if param["in"] != "path" {
            continue;
        }
        let name = param["name"].as_str().expect("parameter name");
        let sample = param["example"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: path parameter {name} has no example"));
        url = url.replace(&format!("{{{name}}}"), sample);
    }
    assert!(
        !url.contains('{'),
        "{path}: a path parameter is not documented"
    );
    url
}

/// The credentials the operation's security asks for: an admin token for bearer
/// schemes, the `ops` client for Basic, nothing for the sealed peer route.
fn authenticated(op: &Value, request: RequestBuilder, admin: &str) -> RequestBuilder {
    let schemes: Vec<&str> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|r| r.keys().map(String::as_str))
        .collect();
    if schemes.contains(&"adminBearer") || schemes.contains(&"gateBearer") {
        request.bearer_auth(admin)
    } else if schemes.contains(&"clientBasic") {
        request.basic_auth(OPS.0, Some(OPS.1))
    } else {
        request
    }
}

/// The documented request body example, encoded as its media type asks.
fn with_body(spec: &Value, op: &Value, request: RequestBuilder) -> RequestBuilder {
    let Some(body) = op.get("requestBody").map(|b| resolve(spec, b)) else {
        return request;
    };
    let (media, content) = body["content"]
        .as_object()
        .and_then(|c| c.iter().next())
        .expect("a request body has content");
    let example = &content["example"];
    match media.as_str() {
        "application/json" => request.json(example),
        "application/x-www-form-urlencoded" => {
            let fields: Vec<(&String, &str)> = example
                .as_object()
                .expect("a form example is an object")
                .iter()
                .map(|(k, v)| (k, v.as_str().expect("form values are strings")))
                .collect();
            request.form(&fields)
        }
        other => panic!("no way to send {other}"),
    }
}

/// A free UDP port for gossip (gossip needs a fixed port; nothing listens on it after).
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    socket.local_addr().expect("local address").port()
}

/// A node in a one-member cluster, so the peer snapshot route is live too.
fn clustered_node() -> TestNode {
    let port = free_udp_port();
    TestNode::start_with(&format!(
        "[cluster]\nnode_id = \"n1\"\ngossip_listen = \"127.0.0.1:{port}\"\n\
         secret = \"an-openapi-test-cluster-secret-of-some-length\"\n"
    ))
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let spec = spec();
    let node = clustered_node();
    let admin = admin_token(&node.base);
    // A ban on the sample address, so that lifting it has something to lift.
    let ban = http()
        .post(node.url("/admin/v1/bans"))
        .bearer_auth(&admin)
        .json(&json!({"address": "203.0.113.7", "duration": "1h"}))
        .send()
        .expect("ban sent");
    assert_eq!(ban.status(), 201);

    let mut answered = 0;
    for (method, path) in documented(&spec) {
        let op = operation(&spec, &method, &path);
        let verb = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let request = http().request(verb, node.url(&concrete(&spec, &method, &path)));
        let request = with_body(&spec, op, authenticated(op, request, &admin));
        let response = request.send().expect("request sent");
        let (status, _) = conforms(&spec, &method, &path, response);
        assert!(
            status != 404 && status != 405,
            "{method} {path} is documented but answered {status}"
        );
        answered += 1;
    }
    assert_eq!(answered, served().len());
}

#[test]
fn a_caller_without_credentials_is_refused_exactly_where_security_is_documented() {
    let spec = spec();
    let node = clustered_node();
    for (method, path) in documented(&spec) {
        let op = operation(&spec, &method, &path);
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let verb = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let request = http().request(verb, node.url(&concrete(&spec, &method, &path)));
        let response = with_body(&spec, op, request).send().expect("request sent");
        let (status, _) = conforms(&spec, &method, &path, response);
        if secured {
            assert_eq!(status, 401, "{method} {path} declares security");
        } else {
            let refused = status == 401 || status == 403;
            assert!(!refused, "{method} {path} is public but answered {status}");
        }
    }
}

fn status_of(spec: &Value, method: &str, path: &str, request: RequestBuilder) -> (u16, Value) {
    conforms(spec, method, path, request.send().expect("request sent"))
}

#[test]
fn the_gate_answers_each_documented_status_in_the_documented_shape() {
    let spec = spec();
    let node = TestNode::start_with("[rate_limits]\nper_minute = 3\nabuse_factor = 100\n");
    let base = &node.base;
    let token = alice_tokens(base, Some("read"))["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let gate = |query: &str| http().get(format!("{base}/v1/check{query}"));
    let check = |request| status_of(&spec, "GET", "/v1/check", request);

    let (status, body) = check(gate(""));
    assert_eq!((status, &body["error"]), (401, &json!("invalid_token")));
    assert_eq!(check(gate("").bearer_auth(&token)).0, 200);
    let (status, body) = check(gate("?scope=write").bearer_auth(&token));
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("insufficient_scope"))
    );
    let bad_uri = gate("")
        .bearer_auth(&token)
        .header("X-Forwarded-Uri", "/a%2fb");
    assert_eq!(check(bad_uri).0, 400);
    let (status, body) = check(gate("").bearer_auth(&token));
    assert_eq!((status, &body["error"]), (429, &json!("rate_limited")));
}

#[test]
fn the_metadata_names_documented_endpoints() {
    let spec = spec();
    let node = TestNode::start();
    let request = http().get(node.url("/.well-known/oauth-authorization-server"));
    let (_, metadata) = status_of(
        &spec,
        "GET",
        "/.well-known/oauth-authorization-server",
        request,
    );
    let issuer = metadata["issuer"].as_str().expect("issuer");
    for field in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "jwks_uri",
    ] {
        let url = metadata[field].as_str().expect("a URL");
        let path = url.strip_prefix(issuer).expect("under the issuer");
        assert!(
            spec["paths"][path].is_object(),
            "{field} {path} is not documented"
        );
    }
}

#[test]
fn the_oauth_endpoints_answer_each_documented_status_in_the_documented_shape() {
    let spec = spec();
    let node = TestNode::start();
    let url = node.url("/oauth/token");
    let token = |request| status_of(&spec, "POST", "/oauth/token", request);
    let grant = [("grant_type", "client_credentials")];

    let (status, body) = token(http().post(&url).form(&grant));
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    let bad_grant = http().post(&url).basic_auth(WEB.0, Some(WEB.1));
    let (status, body) = token(bad_grant.form(&[("grant_type", "implicit")]));
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("unsupported_grant_type"))
    );
    let as_json = http()
        .post(&url)
        .basic_auth(WEB.0, Some(WEB.1))
        .json(&json!({}));
    assert_eq!(token(as_json).0, 415);
    let huge = "x".repeat(20 * 1024);
    let too_large = http().post(&url).basic_auth(WEB.0, Some(WEB.1));
    assert_eq!(
        token(too_large.form(&[("grant_type", huge.as_str())])).0,
        413
    );
    let pair = alice_tokens(&node.base, None);
    let refresh = pair["refresh_token"].as_str().expect("refresh token");
    let refreshed = http().post(&url).basic_auth(WEB.0, Some(WEB.1));
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let (status, body) = token(refreshed.form(&form));
    assert_eq!(status, 200);
    assert!(body["refresh_token"].is_string(), "{body}");

    let introspect = |presented: &str| {
        let request = http().post(node.url("/oauth/introspect"));
        let request = request
            .basic_auth(WEB.0, Some(WEB.1))
            .form(&[("token", presented)]);
        status_of(&spec, "POST", "/oauth/introspect", request).1
    };
    let access = body["access_token"].as_str().expect("access token");
    assert_eq!(introspect(access)["token_type"], "Bearer");
    let next = body["refresh_token"].as_str().expect("refresh token");
    assert_eq!(introspect(next)["token_type"], "refresh_token");
    assert_eq!(
        introspect(refresh),
        json!({"active": false}),
        "a spent generation"
    );

    let revoke = http()
        .post(node.url("/oauth/revoke"))
        .basic_auth(WEB.0, Some(WEB.1));
    let revoked = status_of(
        &spec,
        "POST",
        "/oauth/revoke",
        revoke.form(&[("token", access)]),
    );
    assert_eq!(revoked.0, 200);
    assert_eq!(introspect(access), json!({"active": false}));
}

#[test]
fn the_admin_api_answers_each_documented_status_in_the_documented_shape() {
    let spec = spec();
    let node = TestNode::start();
    let admin = admin_token(&node.base);
    let reader = alice_tokens(&node.base, Some("read"))["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let url = node.url("/admin/v1/revocations");
    let revoke = |request| status_of(&spec, "POST", "/admin/v1/revocations", request);
    let body = json!({"kind": "client", "client_id": "legacy"});

    assert_eq!(revoke(http().post(&url).json(&body)).0, 401);
    assert_eq!(
        revoke(http().post(&url).bearer_auth(&reader).json(&body)).0,
        403
    );
    let as_text = http().post(&url).bearer_auth(&admin).body("{}");
    assert_eq!(revoke(as_text).0, 415);
    let unknown = json!({"kind": "planet", "name": "pluto"});
    assert_eq!(
        revoke(http().post(&url).bearer_auth(&admin).json(&unknown)).0,
        400
    );
    let (status, made) = revoke(http().post(&url).bearer_auth(&admin).json(&body));
    assert_eq!((status, &made["client_id"]), (201, &json!("legacy")));

    let list = http().get(&url).bearer_auth(&admin);
    let (_, listed) = status_of(&spec, "GET", "/admin/v1/revocations", list);
    assert_eq!(listed["revocations"][0]["kind"], "client", "{listed}");
    let rotate = || {
        let request = http()
            .post(node.url("/admin/v1/keys/rotate"))
            .bearer_auth(&admin);
        status_of(&spec, "POST", "/admin/v1/keys/rotate", request).0
    };
    let first = rotate();
    assert!(first == 201 || first == 409, "{first}");
    assert_eq!(rotate(), 409, "a second rotation waits for the first");
    let lift = http()
        .delete(node.url("/admin/v1/bans/198.51.100.1"))
        .bearer_auth(&admin);
    assert_eq!(
        status_of(&spec, "DELETE", "/admin/v1/bans/{address}", lift).0,
        404
    );
    let budget = node.url("/admin/v1/abuse/budgets/planet/x");
    let clear = http().delete(budget).bearer_auth(&admin);
    let path = "/admin/v1/abuse/budgets/{kind}/{id}";
    assert_eq!(status_of(&spec, "DELETE", path, clear).0, 400);
}

#[test]
fn bans_and_abuse_decisions_are_listed_in_the_documented_shape() {
    let spec = spec();
    let node = TestNode::start_with("[rate_limits]\nper_minute = 2\nabuse_factor = 1\n");
    let admin = admin_token(&node.base);
    let ban = json!({"address": "2001:db8::7", "duration": "10m"});
    let request = http().post(node.url("/admin/v1/bans")).bearer_auth(&admin);
    let (status, made) = status_of(&spec, "POST", "/admin/v1/bans", request.json(&ban));
    assert_eq!(
        (status, made["bans"].as_array().map(Vec::len)),
        (201, Some(2))
    );
    let request = http().get(node.url("/admin/v1/bans")).bearer_auth(&admin);
    let (_, bans) = status_of(&spec, "GET", "/admin/v1/bans", request);
    assert_eq!(bans["bans"].as_array().map(Vec::len), Some(2), "{bans}");

    // Past its budget times the abuse factor, a lineage is revoked: a decision with
    // its evidence, and an abuse revocation.
    let token = alice_tokens(&node.base, Some("read"))["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let statuses: Vec<u16> = (0..4)
        .map(|_| check(&node.base, &token, &[]).status().as_u16())
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let request = http().get(node.url("/admin/v1/abuse")).bearer_auth(&admin);
    let (_, abuse) = status_of(&spec, "GET", "/admin/v1/abuse", request);
    assert_eq!(
        abuse["recent_decisions"][0]["reason"], "rate_abuse",
        "{abuse}"
    );
    assert_eq!(abuse["revocations_by_reason"]["rate_abuse"], 1, "{abuse}");
}
