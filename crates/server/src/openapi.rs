//! The OpenAPI 3.1 document, built from the route table, and the JSON Schemas (draft 2020-12,
//! the dialect of OpenAPI 3.1) of what the routes take and answer.

use serde_json::{json, Map, Value};

use crate::routes::{Access, Content, Route};
use crate::{CSRF_HEADER, MAX_BODY_BYTES, SESSION_COOKIE};

/// The document: one operation per route, with its roles (`x-roles`, and in words in the
/// description), its security (none for public routes; session cookie or bearer token
/// otherwise), parameters, request body and responses, common errors included.
pub(crate) fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(route.method.as_str().to_ascii_lowercase(), operation(route));
        }
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
            "schemas": {"Error": schemas::error()}
        }
    })
}

fn operation(route: &Route) -> Value {
    let mut responses = Map::new();
    for (status, description, content) in &route.responses {
        responses.insert(status.to_string(), response(description, content));
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
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
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
    if let Some(schema) = &route.request_body {
        // A body that is not JSON says its media type in the schema (`contentMediaType`).
        let media = schema
            .get("contentMediaType")
            .and_then(Value::as_str)
            .unwrap_or("application/json");
        op["requestBody"] = json!({
            "required": true,
            "content": {media: {"schema": schema}}
        });
    }
    op
}

fn response(description: &str, content: &Content) -> Value {
    match content {
        Content::Json(schema) => json!({
            "description": description,
            "content": {"application/json": {"schema": schema}}
        }),
        Content::Text => json!({
            "description": description,
            "content": {"text/plain": {"schema": {"type": "string"}}}
        }),
        Content::Empty => json!({"description": description}),
    }
}

/// JSON Schemas of the bodies.
pub(crate) mod schemas {
    use borderlens_app::Role;
    use borderlens_controls::{FieldType, FormSchema, MAX_ID_LENGTH};
    use serde_json::{json, Map, Value};

    fn roles() -> Value {
        json!({"type": "string", "enum": Role::ALL.map(Role::name)})
    }

    pub(crate) fn error() -> Value {
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What is wrong, naming the field when known"},
                "fields": {
                    "type": "array",
                    "description": "Each field at fault (`field` empty for the document as a whole)",
                    "items": {
                        "type": "object",
                        "required": ["field", "reason"],
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}
                    }
                }
            }
        })
    }

    pub(crate) fn login_request() -> Value {
        json!({
            "type": "object",
            "required": ["user", "password"],
            "additionalProperties": false,
            "properties": {"user": {"type": "string"}, "password": {"type": "string"}}
        })
    }

    pub(crate) fn session() -> Value {
        json!({
            "type": "object",
            "required": ["user", "role", "csrf_token", "expires_at"],
            "properties": {
                "user": {"type": "string"},
                "role": roles(),
                "csrf_token": {"type": "string", "description": "Send as X-CSRF-Token with the cookie on requests that change state"},
                "expires_at": {"type": "string", "format": "date-time"}
            }
        })
    }

    pub(crate) fn caller() -> Value {
        json!({
            "type": "object",
            "required": ["user", "role"],
            "properties": {
                "user": {"type": "string"},
                "role": roles(),
                "csrf_token": {"type": "string", "description": "Only for a session"}
            }
        })
    }

    /// The submission, with one property per field of the built-in form (types, code lists,
    /// limits). Which fields are asked and required depends on earlier answers (follow-ups):
    /// the server checks that, and `borderlens controls schema` prints the conditions.
    pub(crate) fn control_result_submission() -> Value {
        let form = FormSchema::builtin();
        let mut values = Map::new();
        for field in form.fields() {
            let codes = || -> Value {
                field
                    .code_list
                    .as_deref()
                    .and_then(|name| form.code_list(name))
                    .map(|list| list.iter().map(|c| Value::from(c.code.clone())).collect())
                    .unwrap_or_default()
            };
            let mut schema = match field.kind {
                FieldType::Code => json!({"type": "string", "enum": codes()}),
                FieldType::Codes => json!({
                    "type": "array", "uniqueItems": true, "minItems": 1,
                    "items": {"type": "string", "enum": codes()}
                }),
                FieldType::Text => json!({"type": "string", "maxLength": field.max_length}),
                FieldType::Number => json!({"type": "number"}),
                FieldType::Integer => json!({"type": "integer"}),
                FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
                FieldType::ContainerNumber => json!({
                    "type": "string",
                    "description": "ISO 6346 container number with a valid check digit"
                }),
                FieldType::S10Id => json!({
                    "type": "string",
                    "description": "UPU S10 postal item id with a valid check digit"
                }),
            };
            schema["title"] = Value::from(field.label.clone());
            if let Some(min) = field.min {
                schema["minimum"] = Value::from(min);
            }
            if let Some(max) = field.max {
                schema["maximum"] = Value::from(max);
            }
            if let Some(condition) = &field.when {
                schema["description"] = Value::from(format!("Only asked when {condition}"));
            }
            values.insert(field.name.clone(), schema);
        }
        let id = json!({"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH});
        json!({
            "type": "object",
            "required": ["submission_id", "declaration_id", "schema_version", "values"],
            "additionalProperties": false,
            "properties": {
                "submission_id": id,
                "declaration_id": id,
                "schema_version": {"type": "string", "const": form.version()},
                "values": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["outcome", "inspected_at"],
                    "properties": values
                }
            }
        })
    }

    pub(crate) fn record_report() -> Value {
        json!({
            "type": "object",
            "required": ["id", "status", "submission_id", "declaration_id", "outcome"],
            "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string", "enum": ["recorded", "duplicate"]},
                "submission_id": {"type": "string"},
                "declaration_id": {"type": "string"},
                "outcome": {"type": "string"},
                "label": {"type": ["string", "null"], "enum": ["compliant", "fraud", "critical fraud", null]}
            }
        })
    }

    pub(crate) fn decision_trace() -> Value {
        json!({
            "type": "object",
            "required": ["declaration_id", "item_no", "decided_item", "items", "explanation", "decisions", "results", "label"],
            "properties": {
                "declaration_id": {"type": "string"},
                "item_no": {"type": "integer", "minimum": 1, "description": "The item explained: the one the selection decided on; item 1 when not decided, or decided before the item was recorded"},
                "decided_item": {"type": ["integer", "null"], "description": "The item the selection decided on, as recorded with the decision"},
                "items": {"type": "integer", "description": "Items of the declaration"},
                "explanation": {
                    "type": ["object", "null"],
                    "description": "Score, contributions and counterfactual of item_no by the model that decided (or the newest model); null without a model",
                    "properties": {
                        "model": {"type": "string"},
                        "version": {"type": "integer"},
                        "score": {"type": "number"},
                        "declared": {"type": "object", "additionalProperties": {"type": "string"}},
                        "contributions": {"type": "array", "items": {
                            "type": "object",
                            "properties": {
                                "feature": {"type": "string"}, "words": {"type": "string"},
                                "value": {"type": "string"}, "log_odds": {"type": "number"}
                            }
                        }},
                        "threshold": {"type": "number"},
                        "counterfactual": {"type": ["object", "null"]}
                    }
                },
                "decisions": {"type": "array", "items": {
                    "type": "object",
                    "required": ["id", "at", "actor", "batch", "policy", "pi", "stratum", "lane", "source"],
                    "properties": {
                        "id": {"type": "integer"}, "at": {"type": "string"},
                        "actor": {"type": "string"}, "batch": {"type": "string"},
                        "item_no": {"type": ["integer", "null"], "description": "The item decided on; null for decisions recorded before it was kept"},
                        "policy": {"type": "string"}, "model": {"type": ["string", "null"]},
                        "score": {"type": ["number", "null"]},
                        "pi": {"type": "number", "minimum": 0, "maximum": 1},
                        "stratum": {"type": "string"},
                        "lane": {"type": "string", "enum": ["red", "yellow", "green"]},
                        "source": {"type": "string"},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "overrides": {"type": ["integer", "null"]},
                        "override_reason": {"type": ["string", "null"]}
                    }
                }},
                "results": {"type": "array", "items": {
                    "type": "object",
                    "required": ["id", "submission_id", "recorded_at", "recorded_by", "outcome", "source", "values"],
                    "properties": {
                        "id": {"type": "integer"}, "submission_id": {"type": "string"},
                        "recorded_at": {"type": "string"}, "recorded_by": {"type": "string"},
                        "outcome": {"type": "string"}, "label": {"type": ["string", "null"]},
                        "source": {"type": "string"},
                        "values": {"type": "object", "description": "The answers as recorded; free text exactly as typed (escape it when rendering)"}
                    }
                }},
                "label": {"type": ["string", "null"]}
            }
        })
    }

    fn rate_estimate() -> Value {
        json!({
            "type": "object",
            "required": ["rate", "low", "high", "confidence", "population", "inspected", "hits"],
            "properties": {
                "rate": {"type": "number"}, "low": {"type": "number"}, "high": {"type": "number"},
                "confidence": {"type": "number"}, "population": {"type": "integer"},
                "inspected": {"type": "integer"}, "hits": {"type": "integer"}
            }
        })
    }

    pub(crate) fn estimate_report() -> Value {
        let estimate = rate_estimate();
        let nullable = json!({"oneOf": [estimate.clone(), {"type": "null"}]});
        json!({
            "type": "object",
            "required": ["overall", "naive", "declarations", "pending", "overrides", "segments", "dimension"],
            "properties": {
                "overall": nullable,
                "naive": estimate,
                "declarations": {"type": "integer"},
                "pending": {"type": "integer"},
                "overrides": {"type": "integer"},
                "dimension": {"type": "string"},
                "segments": {"type": "array", "items": {
                    "type": "object",
                    "required": ["segment", "estimate", "naive"],
                    "properties": {"segment": {"type": "string"}, "estimate": nullable, "naive": estimate}
                }}
            }
        })
    }

    pub(crate) fn queue() -> Value {
        json!({
            "type": "object",
            "required": ["day", "days", "offices", "lanes", "rows"],
            "properties": {
                "day": {"type": ["string", "null"]},
                "days": {"type": "array", "items": {"type": "string"}},
                "offices": {"type": "array", "items": {"type": "string"}},
                "lanes": {"type": "object", "additionalProperties": {"type": "integer"}},
                "rows": {"type": "array", "items": {
                    "type": "object",
                    "required": ["declaration_id", "lane", "source", "pi", "reasons", "overridden"],
                    "properties": {
                        "declaration_id": {"type": "string"}, "date": {"type": "string"},
                        "office": {"type": "string"}, "importer": {"type": "string"},
                        "hs6": {"type": "string"}, "origin": {"type": "string"},
                        "lane": {"type": "string", "enum": ["red", "yellow", "green"]},
                        "source": {"type": "string"},
                        "pi": {"type": "number", "minimum": 0, "maximum": 1},
                        "score": {"type": ["number", "null"]},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "overridden": {"type": "boolean"},
                        "outcome": {"type": ["string", "null"]}
                    }
                }}
            }
        })
    }

    pub(crate) fn declaration_scores() -> Value {
        json!({
            "type": "object",
            "required": ["declaration_id", "scores"],
            "properties": {
                "declaration_id": {"type": "string"},
                "scores": {"type": "array", "items": {
                    "type": "object",
                    "required": ["item_no", "model", "version", "score", "scored_at", "reasons"],
                    "properties": {
                        "item_no": {"type": "integer"}, "model": {"type": "string"},
                        "version": {"type": "integer"},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "scored_at": {"type": "string"},
                        "reasons": {"type": "array", "items": {"type": "string"}}
                    }
                }}
            }
        })
    }

    pub(crate) fn token_info() -> Value {
        json!({
            "type": "object",
            "required": ["id", "user", "created_at", "revoked"],
            "properties": {
                "id": {"type": "string", "description": "First 12 hex digits of the token's SHA-256 (not of the token)"},
                "user": {"type": "string"},
                "created_at": {"type": "string"},
                "revoked": {"type": "boolean"}
            }
        })
    }

    pub(crate) fn token_list() -> Value {
        json!({"type": "array", "items": token_info()})
    }

    pub(crate) fn new_token_request() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["user"],
            "properties": {"user": {"type": "string", "description": "An existing user"}}
        })
    }

    pub(crate) fn new_token() -> Value {
        json!({
            "type": "object",
            "required": ["user", "id", "token"],
            "properties": {
                "user": {"type": "string"},
                "id": {"type": "string"},
                "token": {"type": "string", "description": "Shown once; send it as `Authorization: Bearer TOKEN`"}
            }
        })
    }

    pub(crate) fn revoke_report() -> Value {
        json!({
            "type": "object",
            "required": ["token", "already_revoked"],
            "properties": {
                "token": token_info(),
                "already_revoked": {"type": "boolean"}
            }
        })
    }

    pub(crate) fn override_request() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["lane", "reason"],
            "properties": {
                "lane": {"type": "string", "enum": ["red", "yellow", "green"]},
                "reason": {"type": "string", "minLength": 1, "description": "Mandatory; kept in the record"}
            }
        })
    }

    pub(crate) fn decision_entry() -> Value {
        json!({
            "type": "object",
            "required": ["id", "at", "actor", "batch", "policy", "pi", "stratum", "lane", "source"],
            "properties": {
                "id": {"type": "integer"}, "at": {"type": "string"}, "actor": {"type": "string"},
                "batch": {"type": "string"}, "policy": {"type": "string"},
                "pi": {"type": "number"}, "stratum": {"type": "string"},
                "lane": {"type": "string"}, "source": {"type": "string"},
                "overrides": {"type": ["integer", "null"]},
                "override_reason": {"type": ["string", "null"]}
            }
        })
    }

    pub(crate) fn score_request() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["model"],
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer", "description": "Default: the latest"},
                "from": {"type": "string", "format": "date", "description": "Default: the day after the model's training data"},
                "to": {"type": "string", "format": "date"},
                "rate": {"type": "integer", "enum": [1, 2, 5, 10], "default": 5}
            }
        })
    }

    pub(crate) fn score_summary() -> Value {
        json!({
            "type": "object",
            "required": ["model", "version", "rate", "threshold", "scored", "selected", "riskiest"],
            "properties": {
                "model": {"type": "string"}, "version": {"type": "integer"},
                "rate": {"type": "integer"}, "threshold": {"type": "number"},
                "scored": {"type": "integer"}, "selected": {"type": "integer"},
                "riskiest": {"type": "array", "items": {"type": "object"}}
            }
        })
    }

    pub(crate) fn select_request() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["policy", "model", "from", "to"],
            "properties": {
                "policy": {"type": "string"}, "model": {"type": "string"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "seed": {"type": "integer", "default": 0},
                "per_office": {"type": "boolean", "default": false}
            }
        })
    }

    pub(crate) fn file_report() -> Value {
        json!({
            "type": "object",
            "required": ["file", "file_error", "records", "inserted", "unchanged", "labelled", "conflicts", "rejected"],
            "properties": {
                "file": {"type": "string"},
                "file_error": {"type": ["string", "null"]},
                "records": {"type": "integer"}, "inserted": {"type": "integer"},
                "unchanged": {"type": "integer"}, "labelled": {"type": "integer"},
                "conflicts": {"type": "array", "items": {"type": "string"}},
                "rejected": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string"}, "line": {"type": "integer"},
                        "field": {"type": ["string", "null"]}, "message": {"type": "string"}
                    }
                }}
            }
        })
    }
}
