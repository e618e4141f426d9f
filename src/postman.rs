//! `sluice postman`: a tenant's Postman collection (issue 5, SPEC §7).
//!
//! The seed promises each tenant a Postman collection as the starting point
//! for sending data. This module owns turning a tenant's live streams into a
//! Postman v2.1 collection and promises: one request per stream, a `POST
//! {{host}}/stream/v0/data/<id>` with the stream's `Content-Type`, the
//! `X-Amperity-Tenant` and `Authorization: Bearer` headers taken from the
//! collection variables `host`, `tenant` and `token`, the seed's example
//! body for the stream's payload type, and a test script asserting a 202.
//! The output depends only on its inputs (no random ids), so it can be
//! compared and committed.

use serde::Serialize;

use crate::control::snapshot::PayloadFormat;
use crate::control::store::StreamRecord;

/// The collection format's schema URL, which Postman and newman read to
/// know the version.
pub const SCHEMA_V2_1: &str = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";

/// The `host` variable's value when the operator names none: the ingest
/// listener's embedded default.
pub const HOST_DEFAULT: &str = "http://127.0.0.1:8080";

/// The seed's JSON example ("Send JSON using HTTP").
pub const JSON_EXAMPLE: &str = "{\"field1\": \"value1\",\n\"field2\": \"value2\"}";

/// The seed's XML example ("Send XML using cURL").
pub const XML_EXAMPLE: &str = "<records>\n<record>\n<field1>value1</field1>\n</record>\n<record>\n<field1>value2</field1>\n</record>\n</records>\n";

/// A Postman v2.1 collection: the subset of the schema sluice fills in.
#[derive(Debug, Serialize)]
pub struct Collection {
    pub info: Info,
    /// One request per stream, in the order of `stream list`.
    pub item: Vec<Item>,
    /// `host`, `tenant` and `token`, which every request refers to, so an
    /// environment (or newman's `--env-var`) can point them elsewhere.
    pub variable: Vec<Variable>,
}

/// The collection's name and schema.
#[derive(Debug, Serialize)]
pub struct Info {
    pub name: String,
    pub description: String,
    pub schema: &'static str,
}

/// One request with its test script.
#[derive(Debug, Serialize)]
pub struct Item {
    pub name: String,
    /// The `test` script Postman and newman run after the response.
    pub event: Vec<Event>,
    pub request: Request,
}

/// A script attached to a request.
#[derive(Debug, Serialize)]
pub struct Event {
    /// `test`: runs after the response arrives.
    pub listen: &'static str,
    pub script: Script,
}

/// A script's lines.
#[derive(Debug, Serialize)]
pub struct Script {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub exec: Vec<&'static str>,
}

/// The HTTP request.
#[derive(Debug, Serialize)]
pub struct Request {
    pub method: &'static str,
    pub header: Vec<Header>,
    pub body: Body,
    pub url: Url,
    /// The stream's description, shown beside the request.
    pub description: String,
}

/// One request header.
#[derive(Debug, Serialize)]
pub struct Header {
    pub key: &'static str,
    pub value: String,
}

/// A raw body, with the language Postman highlights it in.
#[derive(Debug, Serialize)]
pub struct Body {
    pub mode: &'static str,
    pub raw: &'static str,
    pub options: BodyOptions,
}

/// Postman's `options.raw.language`.
#[derive(Debug, Serialize)]
pub struct BodyOptions {
    pub raw: RawLanguage,
}

/// The editor language of a raw body: `json` or `xml`.
#[derive(Debug, Serialize)]
pub struct RawLanguage {
    pub language: &'static str,
}

/// A URL, both as written and split as the schema wants it.
#[derive(Debug, Serialize)]
pub struct Url {
    pub raw: String,
    pub host: Vec<&'static str>,
    pub path: Vec<String>,
}

/// A collection variable.
#[derive(Debug, Serialize)]
pub struct Variable {
    pub key: &'static str,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: &'static str,
}

/// The script every request runs: the seed's success status is 202.
const TEST_SCRIPT: &[&str] = &[
    "pm.test(\"stream accepted the record (202)\", function () {",
    "    pm.response.to.have.status(202);",
    "});",
];

/// Builds the collection of `tenant` for `streams`, with `host` as the
/// default of the `host` variable. The `token` variable is left empty: the
/// appliance never stores tokens, so the operator supplies one.
pub fn collection(tenant: &str, host: &str, streams: &[StreamRecord]) -> Collection {
    Collection {
        info: Info {
            name: format!("sluice Streaming Ingest: {tenant}"),
            description: format!(
                "One request per stream of tenant {tenant}. Set the variables host (the ingest \
                 listener), tenant and token (from `sluice token generate --tenant {tenant} \
                 --key <key id> --days <N>`); each request expects 202 Accepted."
            ),
            schema: SCHEMA_V2_1,
        },
        item: streams.iter().map(item).collect(),
        variable: vec![
            Variable {
                key: "host",
                value: host.to_owned(),
                kind: "string",
                description: "Base URL of the ingest listener, without a trailing slash.",
            },
            Variable {
                key: "tenant",
                value: tenant.to_owned(),
                kind: "string",
                description: "Tenant name, sent as X-Amperity-Tenant.",
            },
            Variable {
                key: "token",
                value: String::new(),
                kind: "string",
                description: "Access token (JWT) from `sluice token generate`.",
            },
        ],
    }
}

fn item(stream: &StreamRecord) -> Item {
    let (content_type, raw, language) = match stream.format {
        PayloadFormat::Json => ("application/json", JSON_EXAMPLE, "json"),
        PayloadFormat::Xml => ("application/xml", XML_EXAMPLE, "xml"),
    };
    Item {
        name: format!("{} ({})", stream.name, stream.id),
        event: vec![Event {
            listen: "test",
            script: Script {
                kind: "text/javascript",
                exec: TEST_SCRIPT.to_vec(),
            },
        }],
        request: Request {
            method: "POST",
            header: vec![
                Header {
                    key: "Content-Type",
                    value: content_type.to_owned(),
                },
                Header {
                    key: "X-Amperity-Tenant",
                    value: "{{tenant}}".to_owned(),
                },
                Header {
                    key: "Authorization",
                    value: "Bearer {{token}}".to_owned(),
                },
            ],
            body: Body {
                mode: "raw",
                raw,
                options: BodyOptions {
                    raw: RawLanguage { language },
                },
            },
            url: Url {
                raw: format!("{{{{host}}}}/stream/v0/data/{}", stream.id),
                host: vec!["{{host}}"],
                path: vec![
                    "stream".to_owned(),
                    "v0".to_owned(),
                    "data".to_owned(),
                    stream.id.clone(),
                ],
            },
            description: stream.description.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(id: &str, name: &str, format: PayloadFormat) -> StreamRecord {
        StreamRecord {
            id: id.to_owned(),
            tenant: "acme".to_owned(),
            name: name.to_owned(),
            description: format!("{name} stream"),
            format,
            created_at: "2026-01-01T00:00:00Z".to_owned(),
        }
    }

    #[test]
    fn one_request_per_stream_with_variables_and_a_202_test() {
        let streams = [
            stream("is-AbCDefGH", "events", PayloadFormat::Json),
            stream("is-XyZxyZab", "profiles", PayloadFormat::Xml),
        ];
        let value = serde_json::to_value(collection("acme", HOST_DEFAULT, &streams)).expect("serialises");
        assert_eq!(value["info"]["schema"], SCHEMA_V2_1);
        assert_eq!(value["info"]["name"], "sluice Streaming Ingest: acme");
        let variables: Vec<(&str, &str)> = value["variable"]
            .as_array()
            .expect("variables")
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().expect("key"),
                    v["value"].as_str().expect("value"),
                )
            })
            .collect();
        assert_eq!(
            variables,
            [
                ("host", "http://127.0.0.1:8080"),
                ("tenant", "acme"),
                ("token", "")
            ]
        );
        let items = value["item"].as_array().expect("items");
        assert_eq!(items.len(), 2);
        let cases = [
            (
                "events (is-AbCDefGH)",
                "is-AbCDefGH",
                "application/json",
                "json",
                JSON_EXAMPLE,
            ),
            (
                "profiles (is-XyZxyZab)",
                "is-XyZxyZab",
                "application/xml",
                "xml",
                XML_EXAMPLE,
            ),
        ];
        for (item, (name, id, content_type, language, body)) in items.iter().zip(cases) {
            assert_eq!(item["name"], name);
            let request = &item["request"];
            assert_eq!(request["method"], "POST");
            assert_eq!(request["url"]["raw"], format!("{{{{host}}}}/stream/v0/data/{id}"));
            assert_eq!(request["url"]["host"], serde_json::json!(["{{host}}"]));
            assert_eq!(
                request["url"]["path"],
                serde_json::json!(["stream", "v0", "data", id])
            );
            assert_eq!(
                request["header"],
                serde_json::json!([
                    {"key": "Content-Type", "value": content_type},
                    {"key": "X-Amperity-Tenant", "value": "{{tenant}}"},
                    {"key": "Authorization", "value": "Bearer {{token}}"},
                ])
            );
            assert_eq!(request["body"]["mode"], "raw");
            assert_eq!(request["body"]["raw"], body);
            assert_eq!(request["body"]["options"]["raw"]["language"], language);
            assert_eq!(item["event"][0]["listen"], "test");
            assert_eq!(item["event"][0]["script"]["exec"], serde_json::json!(TEST_SCRIPT));
        }
    }

    #[test]
    fn examples_are_what_the_stream_types_accept() {
        let json: serde_json::Value = serde_json::from_str(JSON_EXAMPLE).expect("valid JSON");
        assert!(json.is_object(), "a JSON stream takes one object");
        let mut reader = quick_xml::Reader::from_str(XML_EXAMPLE);
        let mut depth = 0usize;
        loop {
            match reader.read_event().expect("well-formed XML") {
                quick_xml::events::Event::Start(_) => depth += 1,
                quick_xml::events::Event::End(_) => depth -= 1,
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn no_streams_is_an_empty_collection_and_the_host_is_kept() {
        let value =
            serde_json::to_value(collection("t", "https://ingest.example:443", &[])).expect("serialises");
        assert_eq!(value["item"], serde_json::json!([]));
        assert_eq!(value["variable"][0]["value"], "https://ingest.example:443");
    }
}
