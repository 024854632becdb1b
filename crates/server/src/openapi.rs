//! The OpenAPI 3.1 document, built from the route table. The schemas of what the routes take
//! and answer are generated (schemars: JSON Schema draft 2020-12, the dialect of OpenAPI 3.1) from
//! the Rust types the handlers read and serialise, with their serde attributes and doc comments,
//! so a schema cannot drift from the JSON it describes. Named types are `components.schemas`,
//! referenced from the operations.

use std::borrow::Cow;

use borderlens_controls::{FormSchema, Submission};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::routes::{Access, Body, Content, Route};
use crate::{CSRF_HEADER, MAX_BODY_BYTES, SESSION_COOKIE};

/// Where the generated schemas go, and where `$ref`s point.
const COMPONENTS: &str = "/components/schemas";

/// A generator of schemas for `components.schemas`: answers are described as they are
/// serialised (a field that is always written is required, even when it may be null), request
/// bodies as they are read (a field with a default may be left out).
fn generator(answers: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = COMPONENTS.into();
        s.meta_schema = None;
    });
    if answers {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    }
    .into_generator()
}

/// The document: one operation per route, with its roles (`x-roles`, and in words in the
/// description), its security (none for public routes; session cookie or bearer token
/// otherwise), parameters, request body and responses, common errors included.
pub(crate) fn document(routes: &[Route]) -> Value {
    let mut answers = generator(true);
    let mut requests = generator(false);
    let error = answers.subschema_for::<crate::error::Body<'static>>();
    let mut paths = Map::new();
    for route in routes {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(
                route.method.as_str().to_ascii_lowercase(),
                operation(route, &mut answers, &mut requests, &error),
            );
        }
    }
    let mut schemas = answers.take_definitions(true);
    for (name, schema) in requests.take_definitions(true) {
        // A type read and answered alike has one schema; two types of one name would be a
        // programming error, caught by the tests that build the document.
        let previous = schemas.insert(name.clone(), schema.clone());
        assert!(
            previous.is_none_or(|p| p == schema),
            "two schemas named {name}: rename one (#[schemars(rename = ...)])"
        );
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "borderlens API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Customs risk targeting. Every /api/v1 route except login and this document \
                 needs a session cookie (`{SESSION_COOKIE}`, from POST /api/v1/login) or \
                 `Authorization: Bearer TOKEN` (`borderlens token create`). With the cookie, \
                 requests that change state must carry the session's CSRF token in \
                 `X-CSRF-Token`. Errors are JSON `{{\"error\": \"...\"}}`, with `fields` when \
                 the fields at fault are known. Request bodies are limited to {} KiB.",
                MAX_BODY_BYTES / 1024
            ),
            "license": {"name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0"}
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "sessionCookie": {
                    "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                    "description": "Set by POST /api/v1/login (HttpOnly, SameSite=Strict)"
                },
                "bearerToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "An API token from `borderlens token create`"
                }
            },
            "schemas": schemas
        }
    })
}

fn operation(
    route: &Route,
    answers: &mut SchemaGenerator,
    requests: &mut SchemaGenerator,
    error: &Schema,
) -> Value {
    let mut responses = Map::new();
    for (status, description, content) in &route.responses {
        responses.insert(status.to_string(), response(description, *content, answers));
    }
    let mut errors: Vec<(u16, &str)> = route.errors.clone();
    if route.takes_body() {
        errors.extend([
            (400, "Malformed JSON"),
            (413, "Request body over the limit; nothing stored"),
            (415, "Content-Type is not the request body's media type"),
            (
                422,
                "Well-formed JSON with wrong types, missing or unknown fields, or refused \
                 values; `fields` names them; nothing stored",
            ),
        ]);
    }
    let located = |place: &str| route.parameters.iter().any(|p| p["in"] == place);
    if located("query") {
        errors.push((
            422,
            "Unknown query parameters, or values of the wrong form; `fields` names them when \
             known",
        ));
    }
    if located("path") {
        errors.push((400, "A path parameter that cannot be decoded"));
    }
    let mut parameters = route.parameters.clone();
    let (security, roles) = match route.access {
        Access::Public => (json!([]), Vec::new()),
        Access::Roles(roles) => {
            errors.extend([
                (401, "No valid session cookie or bearer token"),
                (
                    403,
                    "The caller's role may not use this route, or the CSRF token is missing",
                ),
            ]);
            if route.changes_state() {
                parameters.push(json!({
                    "name": CSRF_HEADER, "in": "header", "required": false,
                    "description": "The session's CSRF token (from login); required with the \
                                    session cookie, not with a bearer token",
                    "schema": {"type": "string"}
                }));
            }
            (
                json!([{"sessionCookie": []}, {"bearerToken": []}]),
                roles.iter().map(|r| r.name()).collect(),
            )
        }
    };
    errors.push((500, "Internal error; details only in the server's log"));
    for (status, description) in errors {
        responses.entry(status.to_string()).or_insert_with(|| {
            json!({
                "description": description,
                "content": {"application/json": {"schema": error}}
            })
        });
    }
    let who = if roles.is_empty() {
        "Public: no credentials needed.".to_string()
    } else {
        format!("Roles: {}.", roles.join(", "))
    };
    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "description": who,
        "x-roles": roles,
        "security": security,
        "responses": responses,
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = route.request_body {
        let (media, schema) = match body {
            Body::Json(schema_of) => ("application/json", schema_of(requests).to_value()),
            Body::Csv(limit) => (
                "text/csv",
                json!({
                    "type": "string", "contentMediaType": "text/csv",
                    "description": format!("At most {} MiB", limit / (1024 * 1024))
                }),
            ),
        };
        op["requestBody"] = json!({
            "required": true,
            "content": {media: {"schema": schema}}
        });
    }
    op
}

fn response(description: &str, content: Content, answers: &mut SchemaGenerator) -> Value {
    match content {
        Content::Json(schema_of) => json!({
            "description": description,
            "content": {"application/json": {"schema": schema_of(answers)}}
        }),
        Content::Text => json!({
            "description": description,
            "content": {"text/plain": {"schema": {"type": "string"}}}
        }),
        Content::Png => json!({
            "description": description,
            "content": {"image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}}}
        }),
        Content::Empty => json!({"description": description}),
    }
}

/// A control result submission to the built-in form, as `POST /api/v1/control-results` takes
/// it: the envelope is [`Submission`]'s schema; `values` has one property per field of the form
/// ([`FormSchema::answers_json_schema`]: types, code lists, limits), and `schema_version` is the
/// form's. Which follow-up fields are asked and required depends on earlier answers: the server
/// checks that, and `borderlens controls schema` prints the conditions.
pub(crate) struct ControlResultSubmission;

impl JsonSchema for ControlResultSubmission {
    fn schema_name() -> Cow<'static, str> {
        "ControlResultSubmission".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = Submission::json_schema(generator);
        let form = FormSchema::builtin();
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("values".into(), form.answers_json_schema());
            if let Some(version) = properties
                .get_mut("schema_version")
                .and_then(Value::as_object_mut)
            {
                version.insert("const".into(), form.version().into());
            }
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::routes;

    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_json_body_is_a_reference_to_a_generated_schema_that_exists() {
        let doc = document(&routes());
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        references(&doc, &mut found);
        assert!(found.len() > 40, "{} references", found.len());
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{target} does not point at the components"));
            assert!(schemas.contains_key(name), "{target} names no schema");
        }
        // Each route's JSON answers and bodies are named types, the document's own excepted.
        for route in routes().iter().filter(|r| r.operation_id != "openapi") {
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            for (status, _, content) in &route.responses {
                if let Content::Json(_) = content {
                    let schema = &op["responses"][status.to_string()]["content"]
                        ["application/json"]["schema"];
                    let named = schema["$ref"].is_string() || schema["items"]["$ref"].is_string();
                    assert!(named, "{} {status}", route.path);
                }
            }
            if let Some(Body::Json(_)) = route.request_body {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                assert!(schema["$ref"].is_string(), "{} body", route.path);
            }
        }
        assert!(
            !doc.to_string().contains("$defs"),
            "a schema outside the components"
        );
        for name in [
            "Error",
            "Queue",
            "DecisionTrace",
            "ControlResultSubmission",
            "DriftReport",
        ] {
            assert!(schemas.contains_key(name), "no {name}");
        }
    }

    #[test]
    fn the_submission_schema_is_the_envelope_with_the_forms_fields() {
        let doc = document(&routes());
        let schema = &doc["components"]["schemas"]["ControlResultSubmission"];
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["schema_version"]["const"],
            FormSchema::builtin().version()
        );
        let values = &schema["properties"]["values"];
        assert!(values["properties"]["drug_type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("cocaine")));
        let required = values["required"].as_array().unwrap();
        assert!(required.contains(&json!("outcome")) && required.contains(&json!("inspected_at")));
        assert!(
            !required.contains(&json!("drug_type")),
            "a follow-up is not always asked"
        );
    }
}
