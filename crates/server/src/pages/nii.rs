//! The X-ray annotation desk (`borderlens serve --nii-library LIB`): the queue of scans, the
//! review page of one scan with the model's proposals drawn on it (or hidden, for the share
//! reviewed without them), the model versions with their held-out figures, and the button that
//! retrains. Everything the desk decides is `borderlens_app::NiiDesk`'s; this module draws and
//! parses forms.
//!
//! The review form works without script: one row per proposal (class, box corners, a "delete"
//! box), three blank rows to add objects, and the time the page was drawn, from which the
//! server counts the seconds the scan took.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use borderlens_app::{self as app, Caller, DeskView, ScanReview};
use borderlens_nii::consensus::AnnotatedObject;
use borderlens_nii::review::{ActionKind, ArmFigures, Row};
use borderlens_nii::BoxPx;
use maud::{html, Markup};

use super::{caller_of, encode, error_page, html_response, layout, path_id, see_other, Form};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::handlers::{heat_map_path, on_desk};
use crate::AppState;

/// Blank rows offered for new objects.
const BLANK_ROWS: usize = 3;
/// Most rows a form may send.
const MAX_ROWS: usize = 200;

fn f3(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The scan named by `?saved=` (the review just stored), for the banner that says so.
fn saved_of(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "saved")
        .map(|(_, v)| v.into_owned())
}

fn saved_banner(saved: Option<&str>) -> Markup {
    html! {
        @if let Some(scan) = saved {
            p.banner.ok #saved role="status" { "Saved your review of " (scan) "." }
        }
    }
}

pub(crate) async fn desk(
    State(state): State<AppState>,
    auth: Authenticated,
    RawQuery(query): RawQuery,
) -> Response {
    let caller = caller_of(&auth);
    let user = caller.user.clone();
    let saved = saved_of(query.as_deref());
    match on_desk(&state, move |d| d.desk(&user)).await {
        Ok(view) => {
            let mut response =
                html_response(StatusCode::OK, desk_page(caller, &view, saved.as_deref()));
            if view.retrain.running_for.is_some() {
                // the page follows the retraining without script
                response
                    .headers_mut()
                    .insert("refresh", HeaderValue::from_static("3"));
            }
            response
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

fn arm_row(name: &str, arm: &ArmFigures) -> Markup {
    html! {
        tr {
            th scope="row" { (name) }
            td.num { (arm.views) }
            td.num { (f1(arm.median_seconds)) }
            td.num { (f1(arm.views_per_hour)) }
            td.num { (f3(arm.agreement_with_model)) }
            td.num { (f3(arm.agreement_with_truth)) " (" (arm.views_with_truth) ")" }
            td {
                @for kind in ActionKind::ALL {
                    @if let Some(n) = arm.actions.get(kind.word()) { (kind.word()) " " (n) " " }
                }
            }
        }
    }
}

fn desk_page(caller: &Caller, view: &DeskView, saved: Option<&str>) -> Markup {
    let csrf = caller.csrf_token.clone().unwrap_or_default();
    let fig = &view.figures;
    let running = view.retrain.running_for.is_some();
    let body = html! {
        h1 { "X-ray annotation desk · " (view.library) }
        (saved_banner(saved))
        p {
            (view.scans) " scans. Active model: "
            @match &view.active { Some(id) => code { (id) }, None => "none (no proposals yet)" }
            ". " (format!("{:.0}", view.hidden_share * 100.0))
            " % of scans are reviewed without the model's proposals, to measure how much they \
             sway and speed annotators."
        }
        section aria-labelledby="loop" {
            h2 #loop { "The loop so far" }
            table #review-figures {
                thead { tr {
                    th scope="col" { "Proposals" } th scope="col" { "Views reviewed" }
                    th scope="col" { "Median s / view" } th scope="col" { "Views / hour" }
                    th scope="col" { "Agreement with the model (F1)" }
                    th scope="col" { "Agreement with the truth (F1, views)" }
                    th scope="col" { "Actions" }
                } }
                tbody {
                    (arm_row("shown", &fig.shown))
                    (arm_row("hidden", &fig.hidden))
                }
            }
            p.muted {
                "Views per hour count the time from opening a scan to saving it (over 30 minutes \
                 counts as untimed). The study reports 5 to 11 images per analyst-hour without \
                 assistance. Automation bias (agreement with the model shown minus hidden): "
                (f3(fig.automation_bias)) "; speed-up (views per hour shown over hidden): "
                (f3(fig.speed_up)) "."
            }
        }
        section aria-labelledby="models" {
            h2 #models { "Model versions" }
            @match &view.retrain.last {
                Some(Ok(entry)) => div.banner.ok role="status" {
                    p { "Last retraining: " code { (entry.model_id) } " "
                        @if entry.promoted { "is now active" } @else { "was kept but not made active" }
                        ": " (entry.reason) "." }
                },
                Some(Err(reason)) => div.banner.bad role="alert" { p { "Last retraining failed: " (reason) } },
                None => {},
            }
            @if running {
                p #retrain-status role="status" {
                    "Retraining (started by " (view.retrain.running_for.clone().unwrap_or_default())
                    "): " (view.retrain.stage) "…"
                }
            } @else if view.held_out.is_some() {
                form method="post" action="/nii/retrain" {
                    input type="hidden" name="csrf_token" value=(csrf);
                    button.primary type="submit" #retrain { "Retrain on the corrected set" }
                    " and evaluate on " (view.held_out.clone().unwrap_or_default())
                    " before it may replace the active model"
                }
            } @else {
                p.muted { "Retraining is off: the server names no held-out library to evaluate a \
                           new model on (serve --nii-held-out LIB)." }
            }
            @if view.models.is_empty() {
                p { "No model yet." }
            } @else {
                table #model-versions {
                    thead { tr {
                        th scope="col" { "Model" } th scope="col" { "Status" }
                        th scope="col" { "Registered" } th scope="col" { "Trained on" }
                        th scope="col" { "Held-out set" } th scope="col" { "mAP@0.5" }
                        th scope="col" { "Detection rate at 1 % false alarms" }
                        th scope="col" { "at 5 %" } th scope="col" { "Pointing game" }
                        th scope="col" { "Active model on the same set" }
                    } }
                    tbody {
                        @for m in &view.models {
                            tr data-model=(m.model_id) {
                                td { code { (m.model_id) } }
                                td {
                                    @if view.active.as_deref() == Some(m.model_id.as_str()) { strong { "active" } }
                                    @else if m.promoted { "replaced" }
                                    @else { "kept, not active: " (m.reason) }
                                }
                                td { (m.registered) " by " (m.by) }
                                td { (m.training_views) " views (" (m.label_source) "), "
                                     (format!("{:.0}", m.training_seconds)) " s" }
                                td { (m.evaluated_on) }
                                td.num { (f3(m.figures.map50)) }
                                td.num { (f3(m.figures.detection_rate_1)) }
                                td.num { (f3(m.figures.detection_rate_5)) }
                                td.num { (f3(m.figures.pointing_game)) }
                                td {
                                    @match &m.compared_with {
                                        Some((id, f)) => { code { (id) } ": mAP " (f3(f.map50)) ", 1 % " (f3(f.detection_rate_1)) },
                                        None => "–",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="queue" {
            h2 #queue { "Scans" }
            table #scan-queue {
                thead { tr {
                    th scope="col" { "Scan" } th scope="col" { "Cargo" } th scope="col" { "Share" }
                    th scope="col" { "Views" } th scope="col" { "Reviewers" }
                    th scope="col" { "Assigned" }
                    th scope="col" { "You" } th scope="col" { "Proposals" }
                } }
                tbody {
                    @for s in &view.queue {
                        tr {
                            td { a href={ "/nii/scans/" (encode(&s.scan_id)) } { (s.scan_id) } }
                            td { (s.cargo_type) } td { (s.share) } td.num { (s.views) }
                            td.num { (s.reviewers) }
                            td data-assigned=(s.assigned_to_you) {
                                @if s.assigned_to_you { strong { "to you" } " (of " (s.assigned) ")" }
                                @else if s.assigned > 0 { "to " (s.assigned) " others" }
                                @else { "–" }
                            }
                            td { @if s.reviewed_by_you { "reviewed" } @else { "to do" } }
                            td { @if s.shown { "shown" } @else { "hidden" } }
                        }
                    }
                }
            }
        }
    };
    layout("X-ray desk", Some(caller), None, body)
}

pub(crate) async fn scan(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let caller = caller_of(&auth);
    let id = match path_id(id) {
        Ok(id) => id,
        Err(error) => return error_page(Some(caller), &error),
    };
    let user = caller.user.clone();
    let saved = saved_of(query.as_deref());
    match on_desk(&state, move |d| d.scan(&id, &user)).await {
        Ok(review) => render(
            StatusCode::OK,
            caller,
            &review,
            &Form::parse(b""),
            Problem::None { saved },
            now_ms(),
        ),
        Err(error) => error_page(Some(caller), &error),
    }
}

pub(crate) async fn image(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let caller = caller_of(&auth);
    let id = match path_id(id) {
        Ok(id) => id,
        Err(error) => return error_page(Some(caller), &error),
    };
    let view = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "view")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    match on_desk(&state, move |d| d.view_png(&id, view)).await {
        Ok(png) => {
            let mut response = png.into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
            // A scan's views never change once in the library (a catalogue line is never
            // rewritten), so the same URL always shows the same pixels.
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            response
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

/// The rows of a sent form, or the first problem (naming the row and field).
fn rows_of(form: &Form) -> Result<Vec<Row>, String> {
    let count: usize = form
        .get("rows")
        .unwrap_or("0")
        .parse()
        .map_err(|_| "rows: not a number".to_string())?;
    if count > MAX_ROWS {
        return Err(format!("rows: at most {MAX_ROWS}"));
    }
    let mut rows = Vec::new();
    for i in 0..count {
        let get = |name: &str| form.get(&format!("{name}{i}")).unwrap_or("").trim();
        let proposal = match get("p") {
            "" => None,
            p => Some(
                p.parse::<usize>()
                    .map_err(|_| format!("row {}: proposal: not a number", i + 1))?,
            ),
        };
        let deleted = !get("del").is_empty();
        let label = get("label");
        let corners = ["x0_", "y0_", "x1_", "y1_"].map(get);
        if proposal.is_none() && label.is_empty() && corners.iter().all(|c| c.is_empty()) {
            continue; // a blank row left blank
        }
        if deleted {
            // a deleted proposal's fields are not read; a deleted new row is no row
            if proposal.is_some() {
                rows.push(Row {
                    proposal,
                    deleted,
                    object: None,
                });
            }
            continue;
        }
        if label.is_empty() {
            return Err(format!("row {}: class: choose one", i + 1));
        }
        let mut v = [0f64; 4];
        for (k, (c, name)) in corners.iter().zip(["x0", "y0", "x1", "y1"]).enumerate() {
            v[k] = c
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("row {}: {name}: not a number", i + 1))?;
        }
        let bbox = BoxPx::new(v[0], v[1], v[2], v[3]).map_err(|e| format!("row {}: {e}", i + 1))?;
        rows.push(Row {
            proposal,
            deleted,
            object: Some(AnnotatedObject {
                label: label.to_string(),
                bbox,
                score: 1.0,
            }),
        });
    }
    Ok(rows)
}

pub(crate) async fn save(
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
    let opened: i64 = form
        .get("opened_at")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let seconds = (opened > 0).then(|| (now_ms() - opened) as f64 / 1000.0);
    let model_id = form
        .get("model_id")
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let submission = rows_of(&form).map(|rows| app::ReviewSubmission {
        view: 0,
        model_id,
        rows,
        seconds,
    });
    let user = caller.user.clone();
    let scan_id = id.clone();
    let saved = match submission {
        Ok(submission) => on_desk(&state, move |d| d.save(&scan_id, &user, submission)).await,
        Err(problem) => Err(ApiError::unprocessable(problem)),
    };
    match saved {
        Ok(saved) => match saved.next {
            Some(next) => see_other(&format!(
                "/nii/scans/{}?saved={}",
                encode(&next),
                encode(&saved.scan_id)
            )),
            None => see_other(&format!("/nii?saved={}", encode(&saved.scan_id))),
        },
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
            // drawn again with what was sent, and the problem
            let user = caller.user.clone();
            match on_desk(&state, move |d| d.scan(&id, &user)).await {
                Ok(review) => render(
                    error.status,
                    caller,
                    &review,
                    &form,
                    Problem::Refused(error.message.clone()),
                    opened,
                ),
                Err(other) => error_page(Some(caller), &other),
            }
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

pub(crate) async fn retrain(State(state): State<AppState>, auth: Authenticated) -> Response {
    let caller = caller_of(&auth);
    let Some(desk) = state.desk.clone() else {
        let error = ApiError::new(
            StatusCode::NOT_FOUND,
            "this server serves no X-ray library (start it with serve --nii-library LIB)",
        );
        return error_page(Some(caller), &error);
    };
    if let Err(error) = desk.claim_retrain(&caller.user) {
        return error_page(Some(caller), &ApiError::from(error));
    }
    let user = caller.user.clone();
    // Runs after the answer: the desk page shows its stage and, when done, its outcome.
    tokio::task::spawn_blocking(move || {
        let _ = desk.retrain(&user, &app::Silent);
    });
    see_other("/nii#models")
}

fn number(v: f64) -> String {
    format!("{v:.1}")
}

/// Why the form is drawn: fresh (after a save, perhaps), or refused with what was sent.
enum Problem {
    None { saved: Option<String> },
    Refused(String),
}

fn render(
    status: StatusCode,
    caller: &Caller,
    review: &ScanReview,
    sent: &Form,
    problem: Problem,
    opened_at: i64,
) -> Response {
    let csrf = caller.csrf_token.clone().unwrap_or_default();
    let (problem, saved) = match &problem {
        Problem::None { saved } => (None, saved.as_deref()),
        Problem::Refused(message) => (Some(message.as_str()), None),
    };
    // the caller's own objects from an earlier review under this model (with the proposals
    // they came from), or the proposals
    let starting: Vec<(Option<usize>, &AnnotatedObject)> = match &review.yours {
        Some(yours) => yours.iter().map(|(p, o)| (*p, o)).collect(),
        None => review
            .proposals
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(i), p))
            .collect(),
    };
    // after a refusal, as many rows as were sent (the viewer's script adds rows as boxes are
    // drawn), so that nothing typed or drawn is lost
    let sent_rows = match problem {
        Some(_) => sent
            .get("rows")
            .and_then(|r| r.parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_ROWS),
        None => 0,
    };
    let rows = (starting.len() + BLANK_ROWS).max(sent_rows);
    let value = |name: String, default: String| -> String {
        match sent.get(&name) {
            Some(v) if problem.is_some() => v.to_string(),
            _ => default,
        }
    };
    let (w, h) = (review.width, review.height);
    // labels about a fortieth of the view, whatever its size (the image is scaled to the page)
    let font = format!("{:.1}", (f64::from(w.max(h)) / 40.0).max(3.0));
    let image = format!("/nii/scans/{}/image", encode(&review.scan_id));
    let body = html! {
        h1 { "Scan " (review.scan_id) }
        p.muted {
            (review.cargo_type) ", view " (review.view_name) " (" (w) " × " (h) " px)"
            @if review.views > 1 { "; this page reviews the first of " (review.views) " views" }
            @if let Some(d) = &review.declared_contents { ". Declared contents, as declared: " q { (d) } }
        }
        (saved_banner(saved))
        @if let Some(problem) = problem {
            div.banner.bad role="alert" { p { "Nothing was saved: " (problem) } }
        }
        @if review.model_id.is_none() {
            p #proposals-state { "No model is active yet: draw every object yourself." }
        } @else if !review.shown {
            p #proposals-state .banner role="status" {
                "The model's proposals are hidden for this scan: a share of scans is reviewed \
                 without them, to measure how much they sway and speed annotators. Draw every \
                 object yourself."
            }
        } @else if review.yours.is_some() {
            p #proposals-state { "You reviewed this scan before: your objects are below; saving \
                                  again records a new review." }
        } @else {
            p #proposals-state { "The model proposes " (review.proposals.len())
                " object(s), numbered on the image: accept, correct or delete each, and add what it missed." }
        }
        div.viewer data-viewer="" data-editable="1" data-width=(w) data-height=(h)
            data-raw=(format!("/nii/library/scans/{}/raw?view={}", encode(&review.scan_id), review.view))
            data-energies=(review.energies.join(",")) data-layers="[]" {
        details.card #guideline {
            summary { "Guideline, version " (review.guideline.version) ": "
                      (review.guideline.classes.len()) " classes" }
            dl {
                @for c in &review.guideline.classes {
                    dt { (c.name) " (" (c.kind.word()) ")" }
                    dd {
                        (c.definition)
                        @if !c.examples.is_empty() {
                            " Examples: "
                            @for e in &c.examples {
                                a href={ "/nii/library/scans/" (encode(e)) } target="_blank" rel="noopener" { (e) } " "
                            }
                        }
                    }
                }
            }
        }
        figure.scan {
            svg viewBox=(format!("0 0 {w} {h}")) role="img"
                aria-label=(format!("X-ray view of scan {} with {} proposed box(es)", review.scan_id, starting.len())) {
                image href=(image) x="0" y="0" width=(w) height=(h) {}
                @for (n, (proposal, o)) in starting.iter().enumerate() {
                    @let (class, colour) = if proposal.is_some() { ("proposal", "#ff9800") } else { ("yours", "#00bcd4") };
                    rect class=(class) x=(number(o.bbox.x0)) y=(number(o.bbox.y0))
                        width=(number(o.bbox.x1 - o.bbox.x0)) height=(number(o.bbox.y1 - o.bbox.y0))
                        fill="none" stroke=(colour) stroke-width="2" vector-effect="non-scaling-stroke" {}
                    text x=(number(o.bbox.x0)) y=(number((o.bbox.y0 - 1.0).max(f64::from(w.max(h)) / 40.0)))
                        fill=(colour) font-size=(font) {
                        (n + 1) " " (o.label)
                        @if proposal.is_some() && review.yours.is_none() { " " (format!("{:.2}", o.score)) }
                    }
                }
            }
        }
        }
        form.card #review method="post" action={ "/nii/scans/" (encode(&review.scan_id)) } {
            input type="hidden" name="csrf_token" value=(csrf);
            input type="hidden" name="model_id" value=(review.model_id.clone().unwrap_or_default());
            input type="hidden" name="opened_at" value=(opened_at);
            input type="hidden" name="rows" value=(rows);
            table #objects {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Class" }
                    th scope="col" { "x0" } th scope="col" { "y0" } th scope="col" { "x1" } th scope="col" { "y1" }
                    th scope="col" { "Delete" } th scope="col" { "Why" }
                } }
                tbody {
                    @for i in 0..rows {
                        @let (proposal, object) = match starting.get(i) {
                            Some((p, o)) => (*p, Some(*o)),
                            None => (None, None),
                        };
                        @let label = value(format!("label{i}"), object.map(|o| o.label.clone()).unwrap_or_default());
                        @let corner = |name: &str, pick: fn(&BoxPx) -> f64| value(format!("{name}{i}"), object.map(|o| number(pick(&o.bbox))).unwrap_or_default());
                        tr data-row=(i) data-proposal=[proposal] {
                            td {
                                (i + 1) @if object.is_none() { " (new)" }
                                input type="hidden" name={ "p" (i) } value=(proposal.map(|p| p.to_string()).unwrap_or_default());
                            }
                            td {
                                select name={ "label" (i) } aria-label={ "Class of row " (i + 1) } {
                                    option value="" selected[label.is_empty()] { "—" }
                                    @for c in &review.classes {
                                        option value=(c) selected[&label == c] { (c) }
                                    }
                                    @if !label.is_empty() && !review.classes.contains(&label) {
                                        option value=(label) selected { (label) }
                                    }
                                }
                            }
                            @for (name, pick) in [("x0_", (|b: &BoxPx| b.x0) as fn(&BoxPx) -> f64), ("y0_", |b: &BoxPx| b.y0), ("x1_", |b: &BoxPx| b.x1), ("y1_", |b: &BoxPx| b.y1)] {
                                td { input type="number" step="0.1" min="0" name={ (name) (i) }
                                     aria-label={ (name.trim_end_matches('_')) " of row " (i + 1) }
                                     value=(corner(name, pick)); }
                            }
                            td {
                                @if proposal.is_some() {
                                    input type="checkbox" name={ "del" (i) } value="1"
                                        aria-label={ "Delete proposal " (i + 1) }
                                        checked[problem.is_some() && sent.get(&format!("del{i}")).is_some()];
                                }
                            }
                            td {
                                // the model's Grad-CAM heat map of this proposal (a new tab: the
                                // form keeps what was typed)
                                @if let (Some(p), true) = (proposal, review.shown && review.model_id.is_some()) {
                                    a.heat href=(heat_map_path(&review.scan_id, review.view, p))
                                        target="_blank" rel="noopener" { "heat map" }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Boxes are in the view's pixels (x to the right, y down). Leave a new row \
                       blank to skip it." }
            button.primary type="submit" #save-review { "Save the review" }
        }
        p { a href="/nii" { "Back to the desk" } }
    };
    html_response(status, layout("Review a scan", Some(caller), None, body))
}
