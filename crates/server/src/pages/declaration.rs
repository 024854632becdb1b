//! A declaration: what the trader declared beside what the system derived (never overwritten),
//! the score with its contributions and counterfactual, linked records, the selection decision
//! with π, the override form and the control results. Of a declaration of several items, the
//! page shows the item the selection decided on, and says which.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use borderlens_app::{self as app, Caller, DeclarationView};
use borderlens_controls::{FieldType, FormSchema};
use borderlens_domain::{FieldRegistry, FieldType as DeclaredType, Lane};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    caller_of, chart, encode, error_page, html_response, lane_badge, layout, path_id, prob,
    see_other, Form, RECORDERS,
};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::pool::blocking;
use crate::AppState;

#[derive(Deserialize)]
pub(crate) struct Shown {
    /// The submission id just recorded (after the control form).
    recorded: Option<String>,
    /// Set after an override.
    overridden: Option<String>,
}

async fn load(state: &AppState, caller: &Caller, id: String) -> Result<DeclarationView, ApiError> {
    blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::declaration(store, &id)
    })
    .await
}

pub(crate) async fn page(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    shown: Result<Query<Shown>, QueryRejection>,
) -> Response {
    let caller = caller_of(&auth);
    let id = match path_id(id) {
        Ok(id) => id,
        Err(error) => return error_page(Some(caller), &error),
    };
    match load(&state, caller, id).await {
        Ok(view) => {
            let notice = shown.ok().and_then(|Query(s)| {
                s.recorded
                    .map(Notice::Recorded)
                    .or(s.overridden.map(|_| Notice::Overridden))
            });
            render(
                StatusCode::OK,
                caller,
                &view,
                notice,
                None,
                &xray_of(&state, &view).await,
            )
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

pub(crate) async fn override_lane(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let caller = caller_of(&auth);
    let id = match path_id(id) {
        Ok(id) => id,
        Err(error) => return error_page(Some(caller), &error),
    };
    let form = Form::parse(&body);
    let reason = form.get("reason").unwrap_or_default().trim().to_string();
    let target = id.clone();
    let done = match Lane::parse(form.get("lane").unwrap_or_default()) {
        Ok(lane) => {
            blocking(&state.pool, Some(caller.user.clone()), move |store| {
                app::override_decision(store, &target, lane, &reason)
            })
            .await
        }
        Err(e) => Err(ApiError::unprocessable(format!("lane: {e}"))),
    };
    match done {
        Ok(_) => see_other(&format!("/declarations/{}?overridden=1", encode(&id))),
        Err(error) => match load(&state, caller, id).await {
            Ok(view) => render(
                error.status,
                caller,
                &view,
                None,
                Some(&error.message),
                &xray_of(&state, &view).await,
            ),
            Err(_) => error_page(Some(caller), &error),
        },
    }
}

enum Notice {
    Recorded(String),
    Overridden,
}

/// What the page shows of the served X-ray library: its name in the catalogue and, for each of
/// the declaration's scans in it (by scan id: the served library's scans only), the active
/// detector's alarm (issue 16).
pub(crate) struct Xray {
    served: Option<String>,
    alarms: std::collections::BTreeMap<String, app::ScanAlarm>,
}

impl Xray {
    /// The alarm of `scan` when it is in the served library.
    fn alarm_of(&self, scan: &app::DeclarationScan) -> Option<&app::ScanAlarm> {
        if self.served.as_deref() != Some(scan.library.as_str()) {
            return None;
        }
        self.alarms.get(&scan.scan_id)
    }
}

/// The detector's alarm on each of `view`'s scans in the served library. A scan the detector
/// cannot read, or no active detector, shows no alarm: the declaration page still shows.
async fn xray_of(state: &AppState, view: &DeclarationView) -> Xray {
    let mut alarms = std::collections::BTreeMap::new();
    let served = state.nii_library.clone();
    for scan in view
        .scans
        .iter()
        .filter(|s| Some(&s.library) == served.as_ref())
    {
        let id = scan.scan_id.clone();
        let found = crate::handlers::on_desk(state, move |desk| {
            desk.detections(&id, &|v, n| crate::handlers::heat_map_path(&id, v, n))
        })
        .await;
        if let Ok(found) = found {
            alarms.insert(scan.scan_id.clone(), found.alarm());
        }
    }
    Xray { served, alarms }
}

fn render(
    status: StatusCode,
    caller: &Caller,
    view: &DeclarationView,
    notice: Option<Notice>,
    override_problem: Option<&str>,
    xray: &Xray,
) -> Response {
    let trace = &view.trace;
    let id = &trace.declaration_id;
    let design = trace.decisions.iter().find(|d| d.overrides.is_none());
    let can_act = RECORDERS.contains(&caller.role);
    let body = html! {
        h1 { "Declaration " (id) " "
            @if let Some(lane) = view.lane { (lane_badge(lane)) } }
        @match &notice {
            Some(Notice::Recorded(submission)) => div.banner.ok role="status"
                data-recorded=(submission) data-declaration=(id) {
                "Control result recorded (" (submission) ")." },
            Some(Notice::Overridden) => div.banner.ok role="status" { "Override recorded." },
            None => {},
        }
        (goods(&trace.goods))
        (hs_reading(&trace.goods, &trace.hs_reading))
        section aria-labelledby="decision" {
            h2 #decision { "Selection decision" }
            @if let Some(d) = design {
                dl.facts {
                    dt { "Lane" } dd { (lane_badge(d.lane)) " (" (d.source) ")" }
                    @if trace.items > 1 {
                        dt { "Item decided on" }
                        dd { @match d.item_no {
                            Some(n) => { "item " (n) " of " (trace.items) }
                            None => { "not recorded (decided before borderlens kept it); item 1 is shown" }
                        } }
                    }
                    dt { "Selection probability π" } dd { (format!("{:.4}", d.pi)) }
                    dt { "Stratum" } dd { (d.stratum) }
                    dt { "Policy" } dd { (d.policy) }
                    dt { "Model" } dd { (d.model.clone().unwrap_or_else(|| "none".into())) }
                    dt { "Decided" } dd { (when(&d.at)) " by " (d.actor) }
                }
                ul { @for reason in &d.reasons { li { (reason) } } }
            } @else {
                p { "Not selected yet." }
            }
            @for o in trace.decisions.iter().filter(|d| d.overrides.is_some()) {
                p { "Overridden to " (lane_badge(o.lane)) " by " (o.actor) " at " (when(&o.at)) ": "
                    q { (o.override_reason.clone().unwrap_or_default()) } }
            }
            @if can_act && design.is_some() {
                (override_form(id, caller, view.lane, override_problem))
            }
        }
        @if let Some(e) = &trace.explanation {
            section aria-labelledby="score" {
                h2 #score { "Risk score " (prob(e.score)) }
                @if let Some(note) = item_note(trace) {
                    p.muted data-item=(trace.item_no) { (note) }
                }
                p.muted { "Model " (e.model) " v" (e.version) "; the " (e.rate)
                    "% inspection threshold is " (prob(e.threshold)) "." }
                (chart(&e.waterfall_chart()))
                @if let Some(cf) = &e.counterfactual {
                    h2 { "Counterfactual" }
                    p { "The score would fall to " strong { (prob(cf.score)) }
                        ", below the threshold, if:" }
                    ul { @for ch in &cf.changes {
                        li { (ch.field) ": " (ch.from) " → " (ch.to) }
                    } }
                } @else if e.score >= e.threshold {
                    p { "No change of one or two declared fields brings the score below the threshold." }
                } @else {
                    p { "The score is already below the threshold." }
                }
            }
        } @else {
            section { p { "No model has been trained yet: no score." } }
        }
        (dual_visibility(view))
        section aria-labelledby="related" {
            h2 #related { "Linked records" }
            p.muted { "Declarations sharing this importer or declarant, or of a party a linkage run found to be the same firm (\"linked\"), newest first." }
            @if !view.linked_parties.is_empty() {
                div.scroll { table #linked-parties {
                    thead { tr { th { "Role" } th { "This party" } th { "Linked party" } th { "Strongest link" } th { "Match probability" } th { "Linkage run" } } }
                    tbody { @for l in &view.linked_parties { tr {
                        td { (l.role) } td.id { (l.party_id) } td.id { (l.linked_id) }
                        td.id { "with " (l.linked_to) }
                        td { (format!("{:.3}", l.probability)) }
                        td { (l.run) " · " (when(&l.linked_at)) }
                    } } }
                } }
            }
            @if view.related.is_empty() { p { "None." } } @else {
                div.scroll { table {
                    thead { tr { th { "Declaration" } th { "Link" } th { "Date" } th { "HS" } th { "Origin" } th { "Outcome" } } }
                    tbody { @for r in &view.related { tr {
                        td { a href={ "/declarations/" (r.declaration_id) } { (r.declaration_id) } }
                        td { (r.link) } td { (r.date) } td { (r.hs6) } td { (r.origin) }
                        td { (r.label.clone().unwrap_or_else(|| "–".into())) }
                    } } }
                } }
            }
        }
        (xray_scans(view, xray))
        section aria-labelledby="results" {
            h2 #results { "Control results" }
            @if trace.results.is_empty() { p { "None recorded." } }
            @for r in &trace.results {
                div.card {
                    strong { (code_words("outcome", &r.outcome)) } " → " (r.label.clone().unwrap_or_else(|| "no label".into()))
                    p.muted { span.id { (r.submission_id) } " · " (when(&r.recorded_at)) " by " (r.recorded_by) " (" (r.source) ")" }
                    @if let Some(values) = r.values.as_object() {
                        dl.facts { @for (k, v) in values {
                            @let (label, value) = answer_words(k, v);
                            dt { (label) }
                            dd { (value) }
                        } }
                    }
                }
            }
            @if can_act {
                p { a.primary href={ "/declarations/" (id) "/control" } { "Record a control result" } }
            }
            p.muted { "Stored label: " (trace.label.clone().unwrap_or_else(|| "none".into())) }
        }
    };
    html_response(
        status,
        layout(&format!("Declaration {id}"), Some(caller), None, body),
    )
}

/// Which item the score, the values and the label below describe, when there are several.
fn item_note(trace: &app::DecisionTrace) -> Option<String> {
    let (item, items) = (trace.item_no, trace.items);
    if items <= 1 {
        return None;
    }
    Some(match (trace.decided_item, trace.decisions.is_empty()) {
        (Some(_), _) => format!("Item {item} of {items}: the item the selection decided on."),
        (None, true) => format!("Item {item} of {items}: not decided yet."),
        (None, false) => {
            format!("Item {item} of {items}: the decision did not record the item it was made on.")
        }
    })
}

fn override_form(id: &str, caller: &Caller, lane: Option<Lane>, problem: Option<&str>) -> Markup {
    html! {
        details open[problem.is_some()] {
            summary { "Override this decision" }
            form method="post" action={ "/declarations/" (id) "/override" } {
                input type="hidden" name="csrf_token" value=(caller.csrf_token.clone().unwrap_or_default());
                @if let Some(problem) = problem {
                    p.error role="alert" { (problem) }
                }
                div.field {
                    label for="lane" { "New lane" }
                    select #lane name="lane" required {
                        @for l in borderlens_app::LANES {
                            @if Some(*l) != lane { option value=(l) { (l) } }
                        }
                    }
                }
                div.field {
                    label for="reason" { "Reason (mandatory, kept in the record)" }
                    textarea #reason name="reason" required minlength="5" maxlength="1000" rows="3" {}
                }
                button.primary type="submit" { "Record the override" }
            }
        }
    }
}

/// The declared HS code beside the goods descriptions, each exactly as declared (escaped by
/// maud, spaces and line breaks kept, its writing direction isolated so that it cannot reorder
/// the page around it), each labelled with who wrote it. What the HS model reads the text as is
/// shown below it, apart and labelled as derived ([`hs_reading`]).
fn goods(goods: &app::GoodsText) -> Markup {
    let text = |text: &Option<String>, who: &str| {
        html! {
            @match text {
                Some(text) => bdi.verbatim data-description=(who) { (text) },
                None => span.muted data-description=(who) data-absent { "none declared" },
            }
        }
    };
    html! {
        section aria-labelledby="goods" {
            h2 #goods { "Goods as declared" }
            div.scroll { table.goods {
                thead { tr {
                    th scope="col" { "Declared HS code" }
                    th scope="col" { "Goods description, as declared by the sender" }
                    @if goods.description_cleaned.is_some() {
                        th scope="col" { "Cleaned description, by broker/operator" }
                    }
                } }
                tbody { tr {
                    td data-declared-hs6 { (goods.hs6) }
                    td { (text(&goods.description, "sender")) }
                    @if goods.description_cleaned.is_some() {
                        td { (text(&goods.description_cleaned, "cleaned")) }
                    }
                } }
            } }
        }
    }
}

/// A code with its nomenclature words.
fn hs_code_words(code: &app::HsCode) -> Markup {
    html! {
        span.code { (code.code) }
        @if let Some(words) = &code.words { " " span.muted { (words) } }
    }
}

fn verdict_words(verdict: app::HsVerdict) -> &'static str {
    match verdict {
        app::HsVerdict::Agrees => "agrees",
        app::HsVerdict::Disagrees => "disagrees",
        app::HsVerdict::Unsure => "unsure",
    }
}

fn level_words(level: &str) -> &str {
    match level {
        "hs6" => "6-digit",
        other => other,
    }
}

/// The HS reading of the sender's description, derived and labelled so, beside the declared
/// code and the sender's text: one summary line ("Declared … · Description reads as … ·
/// chapter mismatch: disagrees (score …)"), the mismatch per level, the best three codes and
/// the sender-vs-cleaned disagreement. Without a description it says so; a text too vague or
/// unreadable is said to be routed to review, with no code read from it.
fn hs_reading(goods: &app::GoodsText, r: &app::HsReading) -> Markup {
    let chapter = r.mismatch.iter().find(|m| m.level == "chapter");
    let outcome = serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    html! {
        section aria-labelledby="hs-reading" {
            h2 #hs-reading { "HS reading of the description (derived)" }
            p.muted { "Read from the sender's description by the model " span data-hs-model { (r.model) }
                "; computed when this page is shown, never written over the declared code." }
            p #hs-suggestion data-outcome=(outcome) {
                "Declared " span data-hs-declared { (goods.hs6) }
                @if let Some(d) = &r.declared { @if let Some(words) = &d.words {
                    " (" @if d.code != goods.hs6 { (d.code) ": " } (words) ")"
                } }
                " · "
                @match r.outcome {
                    app::HsOutcome::NoDescription => {
                        span data-hs-reads-as { "no goods description was declared: nothing to compare the code with" }
                    }
                    app::HsOutcome::TooVague | app::HsOutcome::CannotRead => {
                        strong data-hs-review { "routed to review" } ": " (r.message)
                    }
                    _ => {
                        "Description reads as "
                        span data-hs-reads-as {
                            @match &r.reads_as {
                                Some(a) => { (a.code) " " (a.words) " (p=" (format!("{:.2}", a.probability)) ")" }
                                None => { "no likely code (" (r.message) ")" }
                            }
                        }
                        @if let Some(c) = chapter {
                            " · chapter mismatch: "
                            strong data-hs-verdict=(verdict_words(c.verdict)) { (verdict_words(c.verdict)) }
                            " (score " (format!("{:.2}", c.score)) ")"
                        }
                    }
                }
            }
            @if !r.mismatch.is_empty() {
                div.scroll { table.hs-mismatch {
                    thead { tr {
                        th scope="col" { "Level" }
                        th scope="col" { "Declared" }
                        th scope="col" { "Description reads as" }
                        th scope="col" { "Mismatch" }
                    } }
                    tbody { @for m in &r.mismatch {
                        tr data-hs-level=(m.level) {
                            td { (level_words(&m.level)) }
                            td { (hs_code_words(&m.declared)) }
                            td { (hs_code_words(&m.reads_as)) " (p=" (format!("{:.2}", m.reads_as_probability)) ")" }
                            td { strong { (verdict_words(m.verdict)) } " (" (format!("{:.2}", m.score)) ")" }
                        }
                    } }
                } }
                p.muted { "Declared code against the description, per level. Chapter: disagrees above the operating point "
                    (format!("{:.3}", app::CHAPTER_MISMATCH_THRESHOLD))
                    " of 1 − P(declared); heading and 6-digit: disagrees when another code is likely (P ≥ 0.5)." }
            }
            @if !r.suggestions.is_empty() && !r.routed_to_review {
                p.muted { "Best 6-digit readings:" }
                ol.hs-suggestions { @for s in &r.suggestions {
                    li { span.code { (s.code) } " " (s.words) " (p=" (format!("{:.2}", s.probability)) ")" }
                } }
            }
            @if let Some(d) = &r.sender_vs_cleaned {
                p #hs-sender-vs-cleaned {
                    "Sender's and cleaned descriptions read apart by "
                    (format!("{:.2}", d.chapter)) " at chapter, "
                    (format!("{:.2}", d.heading)) " at heading, "
                    (format!("{:.2}", d.hs6)) " at 6 digits (0 = same reading, 1 = disjoint): the sender's reads as "
                    (d.sender_reads_as.code) ", the cleaned as " (d.cleaned_reads_as.code) "."
                }
            }
        }
    }
}

/// What was declared, verbatim, beside what the system derived from it: two lists, never one
/// overwriting the other; later files that disagreed are shown, not applied.
fn dual_visibility(view: &DeclarationView) -> Markup {
    let declared = view.trace.explanation.as_ref().map(|e| &e.declared);
    html! {
        section aria-labelledby="values" {
            h2 #values { "Declared and derived values" }
            div.grid2 {
                div {
                    h2 { "As declared (never changed)" }
                    @if let Some(declared) = declared {
                        // Free texts (the goods descriptions) are shown with the declared code above.
                        div.scroll { table { tbody { @for field in FieldRegistry::standard().fields().iter().filter(|f| f.ty != DeclaredType::Text) {
                            // (An optional field the item did not declare, such as a container
                            // number, is left out rather than shown empty.)
                            @if let Some(value) = declared.get(field.name).filter(|v| field.required || !v.is_empty()) {
                                tr { th scope="row" { (field.words) } td { (value) } }
                            }
                        } } } }
                    } @else {
                        p { "Shown with the score once a model is trained." }
                    }
                }
                div {
                    h2 { "Derived by borderlens" }
                    div.scroll { table {
                        thead { tr { th { "Value" } th { "As read" } th { "Comes from" } th { "Contribution" } } }
                        tbody { @for d in &view.derived {
                            tr {
                                td { (d.words) } td { (d.value) }
                                td {
                                    @if let Some(declared) = &d.declared { "declared: " (declared) }
                                    @else if let Some(history) = &d.history {
                                        span.few[history.few] data-history-count=(history.count) { (history.words) }
                                    }
                                    @if let Some(linked) = &d.linked { br; span.muted { (linked) } }
                                }
                                td { (format!("{:+.3}", d.log_odds)) }
                            }
                        } }
                    } }
                }
            }
            @if !view.conflicts.is_empty() {
                h2 { "Later files that disagreed (kept aside, the original stands)" }
                div.scroll { table {
                    thead { tr { th { "Field" } th { "Stored" } th { "Later file said" } th { "Source" } } }
                    tbody { @for c in &view.conflicts { tr {
                        td { (c.field) } td { (c.stored) } td { (c.incoming) } td { (c.source) " · " (when(&c.at)) }
                    } } }
                } }
            }
        }
    }
}

/// A stored time (RFC 3339) as a person reads it: `2026-12-05 14:03 UTC`; text that is not
/// such a time is shown as it is.
pub(crate) fn when(stored: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(stored.trim()) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => stored.to_string(),
    }
}

/// The form's words for a code of field `field` (`"outcome"`, ...), or the code itself when the
/// form does not know it.
fn code_words(field: &str, code: &str) -> String {
    FormSchema::builtin()
        .code_of(field, &code.to_lowercase())
        .map_or_else(|| code.to_string(), |c| c.label.clone())
}

/// One answer of a control result in words: the field's label and the value with codes as
/// their labels, lists joined by commas and times readable; never JSON.
fn answer_words(field: &str, value: &serde_json::Value) -> (String, String) {
    use serde_json::Value;
    let label = FormSchema::builtin()
        .field(field)
        .map_or_else(|| field.replace('_', " "), |f| f.label.clone());
    let one = |v: &Value| match v {
        Value::String(text) => match FormSchema::builtin().field(field).map(|f| f.kind) {
            Some(FieldType::Code | FieldType::Codes) => code_words(field, text),
            Some(FieldType::Datetime) => when(text),
            _ => text.clone(),
        },
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Null => "–".to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) | Value::Object(_) => String::new(),
    };
    let text = match value {
        Value::Array(values) => values.iter().map(one).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{}: {}", k.replace('_', " "), one(v)))
            .collect::<Vec<_>>()
            .join("; "),
        other => one(other),
    };
    (label, text)
}

/// A catalogued library's folder name (not its path on the server) for the page.
fn library_name(library: &str) -> &str {
    std::path::Path::new(library)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(library)
}

/// The X-ray scans of the declaration's containers and parcels (issue 15): the ids as declared
/// (an invalid one says why it links nothing), then the catalogued scans, linked to the viewer
/// when they are in the library this server serves.
fn xray_scans(view: &DeclarationView, xray: &Xray) -> Markup {
    let served_library = xray.served.as_deref();
    if view.transport.is_empty() {
        return html! {};
    }
    html! {
        section aria-labelledby="xray" #xray-scans {
            h2 #xray { "X-ray scans" }
            p.muted { "Scans of the containers and parcels this declaration names, from the X-ray libraries catalogued in the store, newest first." }
            ul { @for t in &view.transport {
                li { "Item " (t.item_no) ", " (t.kind) " " span.id { (t.declared) }
                    @match (&t.canonical, &t.problem) {
                        (Some(c), _) if *c != t.declared => { " (" (c) ")" },
                        (_, Some(problem)) => { " — " span.few { (problem) ": links no scan" } },
                        _ => {},
                    }
                }
            } }
            @if view.scans.is_empty() { p { "No catalogued scan." } } @else {
                div.scroll { table #scans {
                    thead { tr { th { "Scan" } th { "Scanned" } th { "Of" } th { "Purpose" } th { "Outcome" } th { "Source" } th { "Detector alarm" } } }
                    tbody { @for s in &view.scans { tr {
                        td { @if served_library == Some(s.library.as_str()) {
                                a href={ "/nii/library/scans/" (encode(&s.scan_id)) } { (s.scan_id) }
                            } @else {
                                span.id { (s.scan_id) } br; span.muted { "in library " (library_name(&s.library)) }
                            } }
                        td { (s.scanned_at) } td { (s.cargo_type) " · " (s.via) }
                        td { (s.purpose) } td { (s.outcome.clone().unwrap_or_else(|| "–".into())) }
                        td { (s.share) }
                        td { @match xray.alarm_of(s) {
                            Some(alarm) => {
                                span data-alarm=(format!("{:.3}", alarm.alarm)) { "alarm " (format!("{:.2}", alarm.alarm)) }
                                @if let Some((class, score, view_name, heat_map)) = &alarm.top {
                                    br; (class) " " (format!("{score:.2}")) " in " (view_name)
                                    br; a href=(heat_map) {
                                        img.heat src=(heat_map) width="160" loading="lazy"
                                            alt={ "Grad-CAM heat map of the " (class) " detection on scan " (s.scan_id) };
                                    }
                                }
                                br; span.muted { "model " (alarm.model_id) }
                            },
                            None => span.muted { "–" },
                        } }
                    } } }
                } }
                p.muted { "The alarm is the active X-ray detector's highest score on the scan's views; the heat map shows where it looked (Grad-CAM). It is a hint for the officer, not a finding." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goods_texts_are_shown_escaped_and_labelled_with_who_wrote_them() {
        let declared = app::GoodsText {
            hs6: "851713".into(),
            description: Some("<script>alert(1)</script> 2 x \"phones\"\n& case".into()),
            description_cleaned: None,
        };
        let html = goods(&declared).into_string();
        assert!(
            html.contains(
                "&lt;script&gt;alert(1)&lt;/script&gt; 2 x &quot;phones&quot;\n&amp; case"
            ),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("as declared by the sender"), "{html}");
        assert!(
            !html.contains("broker/operator"),
            "no cleaned column without one: {html}"
        );
        assert!(html.contains("<td data-declared-hs6>851713</td>"), "{html}");
        let both = app::GoodsText {
            description: None,
            description_cleaned: Some("Smartphones".into()),
            ..declared
        };
        let html = goods(&both).into_string();
        assert!(
            html.contains("Cleaned description, by broker/operator"),
            "{html}"
        );
        assert!(html.contains("data-absent"), "{html}");
        assert!(html.contains(">Smartphones</bdi>"), "{html}");
    }

    #[test]
    fn the_hs_reading_says_when_there_is_nothing_to_read_and_never_guesses_on_review() {
        let shown = |description: Option<&str>| {
            let goods = app::GoodsText {
                hs6: "611249".into(),
                description: description.map(str::to_string),
                description_cleaned: None,
            };
            hs_reading(&goods, &app::hs_reading(&goods).unwrap()).into_string()
        };
        let none = shown(None);
        assert!(none.contains("no goods description was declared"), "{none}");
        assert!(!none.contains("data-hs-verdict") && !none.contains("hs-mismatch"));
        let thai = shown(Some("เสื้อยืดผ้าฝ้าย"));
        assert!(thai.contains("routed to review"), "{thai}");
        assert!(thai.contains("data-outcome=\"cannot_read\""), "{thai}");
        assert!(!thai.contains("data-hs-verdict") && !thai.contains("hs-suggestions"));
        let wire = shown(Some("insulated copper wire"));
        assert!(wire.starts_with("<section"), "{wire}");
        assert!(
            wire.contains("Declared <span data-hs-declared>611249</span> ("),
            "{wire}"
        );
        assert!(wire.contains("data-hs-verdict=\"disagrees\""), "{wire}");
        assert!(wire.contains("hs-lexical-1+"), "{wire}");
    }

    #[test]
    fn times_read_as_minutes_in_utc_and_other_text_is_kept() {
        assert_eq!(when("2026-12-05T14:03:27.123456Z"), "2026-12-05 14:03 UTC");
        assert_eq!(when("2026-12-05T15:03:27+01:00"), "2026-12-05 14:03 UTC");
        assert_eq!(when("yesterday"), "yesterday");
    }

    #[test]
    fn control_answers_read_in_the_form_words_not_json() {
        let schema = FormSchema::builtin();
        let field = schema
            .fields()
            .iter()
            .find(|f| f.kind == FieldType::Codes)
            .expect("a codes field in the builtin form");
        let list = schema
            .code_list(field.code_list.as_deref().unwrap())
            .unwrap();
        let codes: Vec<serde_json::Value> = list
            .iter()
            .take(2)
            .map(|c| serde_json::Value::String(c.code.clone()))
            .collect();
        let (label, text) = answer_words(&field.name, &serde_json::Value::Array(codes));
        assert_eq!(label, field.label);
        let words: Vec<&str> = list.iter().take(2).map(|c| c.label.as_str()).collect();
        assert_eq!(text, words.join(", "));
        assert!(!text.contains('[') && !text.contains('"'), "{text}");
        let outcomes = schema
            .field("outcome")
            .unwrap()
            .code_list
            .as_deref()
            .unwrap();
        let outcome = &schema.code_list(outcomes).unwrap()[0];
        assert_eq!(code_words("outcome", &outcome.code), outcome.label);
        assert_eq!(code_words("outcome", "not_a_code"), "not_a_code");
        assert_eq!(
            answer_words("unknown_field", &serde_json::json!(true)),
            ("unknown field".to_string(), "yes".to_string())
        );
    }
}
