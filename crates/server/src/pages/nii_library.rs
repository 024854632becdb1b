//! The X-ray library's pages (`serve --nii-library LIB`): the browser with filters on every
//! metadata field and the provenance, the scan viewer (window and level on the 16-bit data,
//! zoom and pan, pseudo-colour for dual energy, every source's objects as layers; `nii.js`),
//! the raw channels the viewer reads, the quality report, and the reviewers' queue of disputed
//! objects with the form that records a decision. The data is `borderlens_app::NiiDesk`'s;
//! this module draws and parses forms. Every page works without script: the viewer then shows
//! the view as a grey PNG with the layers as SVG boxes.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use borderlens_app::{
    Caller, DisputeReview, Layer, LibraryPage, ReviewDecision, ScanFilter, ScanViewer,
};
use borderlens_nii::consensus::{AnnotatedObject, Decision};
use borderlens_nii::{BoxPx, Energy};
use maud::{html, Markup};

use super::{
    caller_of, chart, encode, error_page, html_response, layout, path_id, see_other, Form, READERS,
    REVIEWERS,
};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::handlers::on_desk;
use crate::AppState;

/// Most rows a review form may send.
const MAX_ROWS: usize = 200;

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn view_of(query: Option<&str>) -> usize {
    query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "view")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn scan_href(id: &str) -> String {
    format!("/nii/library/scans/{}", encode(id))
}

fn number(v: f64) -> String {
    format!("{v:.1}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The library browser.
pub(crate) async fn browse(
    State(state): State<AppState>,
    auth: Authenticated,
    RawQuery(query): RawQuery,
) -> Response {
    let caller = caller_of(&auth);
    let mut filter = ScanFilter::default();
    for (k, v) in query_pairs(query.as_deref()) {
        if k == "page" {
            filter.page = v.parse::<usize>().unwrap_or(1).saturating_sub(1);
        } else {
            filter.terms.push((k, v));
        }
    }
    let personal = READERS.contains(&caller.role);
    match on_desk(&state, move |d| d.browse(&filter, personal)).await {
        Ok(page) => html_response(StatusCode::OK, browse_page(caller, &page)),
        Err(error) => error_page(Some(caller), &error),
    }
}

fn page_link(page: &LibraryPage, n: usize) -> String {
    let mut query: Vec<String> = page
        .filters
        .iter()
        .filter(|f| !f.current.is_empty())
        .map(|f| format!("{}={}", f.name, encode(&f.current)))
        .collect();
    query.push(format!("page={}", n + 1));
    format!("/nii/library?{}", query.join("&"))
}

fn browse_page(caller: &Caller, page: &LibraryPage) -> Markup {
    let body = html! {
        h1 { "X-ray library · " (page.library) }
        p #matched role="status" {
            (page.matched) " of " (page.total) " scans match"
            @if page.pages > 1 { "; page " (page.page + 1) " of " (page.pages) }
            ". " a href="/nii/report" { "Quality report" }
            @if REVIEWERS.contains(&caller.role) { " · " a href="/nii/disputes" { "Disputed objects" } }
        }
        details.card open[page.matched < page.total] {
            summary { "Filters" }
            form #filters method="get" action="/nii/library" {
                div.filters {
                    @for f in &page.filters {
                        label {
                            (f.name.replace('_', " "))
                            @match &f.values {
                                Some(values) => select name=(f.name) {
                                    option value="" selected[f.current.is_empty()] { "any" }
                                    @for v in values { option value=(v) selected[&f.current == v] { (v) } }
                                    @if !f.current.is_empty() && !values.contains(&f.current) {
                                        option value=(f.current) selected { (f.current) }
                                    }
                                },
                                None => input type="search" name=(f.name) value=(f.current)
                                    placeholder="contains…";,
                            }
                        }
                    }
                }
                button.primary type="submit" #apply-filters { "Filter" }
                " " a href="/nii/library" { "Clear" }
            }
        }
        div.scroll {
            table #library-scans {
                thead { tr {
                    th scope="col" { "Scan" } th scope="col" { "Scanned" } th scope="col" { "Cargo" }
                    th scope="col" { "Scanner" } th scope="col" { "Location" }
                    th scope="col" { "Container / item" } th scope="col" { "Views" }
                    th scope="col" { "Share" } th scope="col" { "Licence" }
                    th scope="col" { "Privacy" } th scope="col" { "Annotators" }
                    th scope="col" { "Open disputes" } th scope="col" { "Classes" }
                } }
                tbody {
                    @for s in &page.scans {
                        tr data-scan=(s.scan_id) {
                            td { a href=(scan_href(&s.scan_id)) { (s.scan_id) } }
                            td { (s.scanned_at) } td { (s.cargo_type) } td { (s.scanner_model) }
                            td { (s.location.clone().unwrap_or_default()) }
                            td { (s.container_or_package.clone().unwrap_or_default()) }
                            td { (s.views) } td { (s.share) }
                            td { (s.licence) @if !s.redistributable { " (not redistributable)" } }
                            td { @if s.anonymised { "anonymised" } @else { strong { "personal data" } } }
                            td.num { (s.annotators) } td.num { (s.open_disputes) }
                            td { (s.classes.join(", ")) }
                        }
                    }
                }
            }
        }
        @if page.pages > 1 {
            nav.pager aria-label="Pages" {
                @if page.page > 0 { a rel="prev" href=(page_link(page, page.page - 1)) { "Previous" } " " }
                @if page.page + 1 < page.pages { a rel="next" href=(page_link(page, page.page + 1)) { "Next" } }
            }
        }
    };
    layout("X-ray library", Some(caller), None, body)
}

/// The viewer's canvas and controls (script), over the grey PNG and SVG boxes (no script).
/// `layers` are drawn as toggled layers; on the annotation page the form's rows are drawn too
/// and the pointer and keyboard draw boxes into them (`editable`).
pub(crate) fn viewer(
    scan_id: &str,
    view: usize,
    width: u32,
    height: u32,
    energies: &[String],
    layers: &[Layer],
    editable: bool,
) -> Markup {
    let png = format!("/nii/scans/{}/image?view={view}", encode(scan_id));
    let raw = format!("/nii/library/scans/{}/raw?view={view}", encode(scan_id));
    let layers_json = serde_json::to_string(layers).unwrap_or_else(|_| "[]".into());
    let font = format!("{:.1}", (f64::from(width.max(height)) / 40.0).max(3.0));
    html! {
        div.viewer data-viewer="" data-raw=(raw) data-width=(width) data-height=(height)
            data-energies=(energies.join(",")) data-layers=(layers_json)
            data-editable=[editable.then_some("1")] {
            figure.scan {
                svg viewBox=(format!("0 0 {width} {height}")) role="img"
                    aria-label=(format!("X-ray view {view} of scan {scan_id}")) {
                    image href=(png) x="0" y="0" width=(width) height=(height) {}
                    @for layer in layers {
                        @for (n, o) in layer.objects.iter().enumerate() {
                            g class={ "layer layer-" (layer.kind) } data-layer=(layer.name) {
                                rect x=(number(o.bbox.x0)) y=(number(o.bbox.y0))
                                    width=(number(o.bbox.x1 - o.bbox.x0)) height=(number(o.bbox.y1 - o.bbox.y0))
                                    fill="none" vector-effect="non-scaling-stroke" {}
                                text x=(number(o.bbox.x0)) y=(number(o.bbox.y0.max(f64::from(width.max(height)) / 40.0)))
                                    font-size=(font) { (layer.name) " " (n + 1) ": " (o.label) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A scan in the viewer: metadata, provenance, each view with its layers.
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
    let personal = READERS.contains(&caller.role);
    let view = view_of(query.as_deref());
    let decided = query_pairs(query.as_deref())
        .iter()
        .any(|(k, _)| k == "decided");
    match on_desk(&state, move |d| d.viewer(&id, personal)).await {
        Ok(scan) if view < scan.views.len() => {
            // The declarations of its container or parcel, for those who may read declarations.
            let declarations = if personal {
                let field = |name: &str| {
                    scan.metadata
                        .iter()
                        .find(|(f, v)| f == name && !v.is_empty())
                        .map(|(_, v)| v.clone())
                };
                let (container, parcel) = (field("container_id"), field("package_id"));
                let found =
                    crate::pool::blocking(&state.pool, Some(caller.user.clone()), move |store| {
                        borderlens_app::declarations_of_scan(
                            store,
                            container.as_deref(),
                            parcel.as_deref(),
                        )
                    })
                    .await;
                match found {
                    Ok(found) => Some(found),
                    Err(error) => return error_page(Some(caller), &error),
                }
            } else {
                None
            };
            html_response(
                StatusCode::OK,
                scan_page(caller, &scan, view, decided, declarations.as_deref()),
            )
        }
        Ok(scan) => error_page(
            Some(caller),
            &ApiError::new(
                StatusCode::NOT_FOUND,
                format!("scan '{}' has no view {view}", scan.scan_id),
            ),
        ),
        Err(error) => error_page(Some(caller), &error),
    }
}

fn scan_page(
    caller: &Caller,
    scan: &ScanViewer,
    view: usize,
    decided: bool,
    declarations: Option<&[borderlens_app::ScanDeclaration]>,
) -> Markup {
    let v = &scan.views[view];
    let body = html! {
        h1 { "Scan " (scan.scan_id) }
        @if decided {
            p.banner.ok #decided role="status" { "Your decision is recorded; the consensus below follows it." }
        }
        p {
            a href="/nii/library" { "Library" }
            @if super::ANNOTATORS.contains(&caller.role) {
                " · " a #annotate href={ "/nii/scans/" (encode(&scan.scan_id)) } { "Annotate" }
            }
            @if REVIEWERS.contains(&caller.role) && v.disputed > 0 {
                " · " a #review-disputes href={ "/nii/disputes/" (encode(&scan.scan_id)) "?view=" (view) } {
                    "Review " (v.disputed) " disputed object(s) (" (v.open) " open)"
                }
            }
        }
        @if scan.views.len() > 1 {
            nav aria-label="Views" {
                @for other in &scan.views {
                    @if other.view == view { strong { (other.name) } " " }
                    @else { a href={ (scan_href(&scan.scan_id)) "?view=" (other.view) } { (other.name) } " " }
                }
            }
        }
        p.muted { "View " (v.name) ", " (v.width) " × " (v.height) " px, "
                  (v.energies.join(" and ")) " energy. " (v.disputed) " disputed object(s), "
                  (v.open) " open." }
        (viewer(&scan.scan_id, view, v.width, v.height, &v.energies, &v.layers, false))
        section aria-labelledby="layers-h" {
            h2 #layers-h { "Objects by source" }
            div.scroll {
                table #layers {
                    thead { tr { th scope="col" { "Source" } th scope="col" { "Kind" }
                                 th scope="col" { "Objects" } th scope="col" { "Seconds" } } }
                    tbody {
                        @for l in &v.layers {
                            tr data-kind=(l.kind) {
                                td { (l.name) } td { (l.kind) }
                                td { @for (n, o) in l.objects.iter().enumerate() {
                                    (n + 1) ": " (o.label) " [" (number(o.bbox.x0)) ", " (number(o.bbox.y0))
                                    ", " (number(o.bbox.x1)) ", " (number(o.bbox.y1)) "] " } }
                                td.num { (l.seconds.map(number).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(declarations) = declarations {
            section aria-labelledby="declarations-h" {
                h2 #declarations-h { "Declarations of this container or parcel" }
                @if declarations.is_empty() {
                    p { "None in the store (no declared container number or postal item id matches this scan's)." }
                } @else {
                    div.scroll { table #scan-declarations {
                        thead { tr { th scope="col" { "Declaration" } th scope="col" { "Item" } th scope="col" { "Date" }
                                     th scope="col" { "Importer" } th scope="col" { "HS" } th scope="col" { "As declared" } } }
                        tbody { @for d in declarations { tr {
                            td { a href={ "/declarations/" (encode(&d.declaration_id)) } { (d.declaration_id) } }
                            td { (d.item_no) } td { (d.date) } td.id { (d.importer_id) } td { (d.hs6) }
                            td.id { (d.declared) }
                        } } }
                    } }
                    @if declarations.len() == borderlens_app::SCAN_DECLARATIONS_SHOWN {
                        p.muted { "The newest " (borderlens_app::SCAN_DECLARATIONS_SHOWN) " are shown." }
                    }
                }
            }
        }
        section aria-labelledby="meta-h" {
            h2 #meta-h { "Metadata" }
            @if let Some(problem) = &scan.privacy_problem { p.banner.bad { (problem) } }
            div.scroll { table #metadata { tbody {
                @for (field, value) in &scan.metadata {
                    tr { th scope="row" { (field.replace('_', " ")) } td { (value) } }
                }
            } } }
            h2 { "Provenance" }
            div.scroll { table #provenance { tbody {
                @for (field, value) in &scan.provenance {
                    tr { th scope="row" { (field) } td { (value) } }
                }
            } } }
        }
    };
    layout("X-ray scan", Some(caller), None, body)
}

/// One energy channel of a view as raw little-endian 16-bit samples, for the viewer.
pub(crate) async fn raw(
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
    let pairs = query_pairs(query.as_deref());
    let view = view_of(query.as_deref());
    let energy = match pairs
        .iter()
        .find(|(k, _)| k == "energy")
        .map(|(_, v)| v.as_str())
    {
        Some("low") => Energy::Low,
        Some("high") | None => Energy::High,
        Some(other) => {
            return error_page(
                Some(caller),
                &ApiError::unprocessable(format!("energy: '{other}' is neither low nor high")),
            )
        }
    };
    match on_desk(&state, move |d| d.channel(&id, view, energy)).await {
        Ok((width, height, bytes)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert("x-width", HeaderValue::from(width));
            headers.insert("x-height", HeaderValue::from(height));
            // a scan's images never change once in the library
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            response
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

/// The quality report of the library, with its charts.
pub(crate) async fn report(State(state): State<AppState>, auth: Authenticated) -> Response {
    let caller = caller_of(&auth);
    match on_desk(&state, |d| d.quality()).await {
        Ok(report) => {
            let a = &report.annotation;
            let body = html! {
                h1 { "Quality report" }
                p { a href="/nii/library" { "Library" } }
                div.scroll { table #quality-figures { tbody {
                    tr { th scope="row" { "Scans" } td.num { (report.scans) } }
                    tr { th scope="row" { "Counted as real traffic" } td.num { (report.counts_as_real) } }
                    @if report.from_renderings > 0 {
                        tr { th scope="row" { "Approximated from 8-bit renderings" }
                             td.num { (report.from_renderings) } }
                    }
                    @for c in &report.provenance {
                        tr { th scope="row" { "Share: " (c.name) } td.num { (c.count) } }
                    }
                    tr { th scope="row" { "Annotated (coverage)" }
                         td.num { (a.scans_annotated) " (" (format!("{:.1}", a.coverage * 100.0)) " %)" } }
                    tr { th scope="row" { "Annotated by two or more" } td.num { (a.scans_multi_annotated) } }
                    tr { th scope="row" { "Annotators" } td.num { (a.annotators) } }
                    @if let Some(g) = &report.agreement {
                        tr { th scope="row" { "Merged objects (disputed)" }
                             td.num { (g.objects) " (" (g.disputed) ", " (format!("{:.1}", g.disputed_share * 100.0)) " %)" } }
                        tr { th scope="row" { "Disputed, not yet decided by a reviewer" } td.num #open-disputes { (g.open) } }
                        tr { th scope="row" { "Krippendorff's α, boxes / labels" }
                             td.num { (g.alpha_boxes.map(|x| format!("{x:.3}")).unwrap_or("–".into())) " / "
                                      (g.alpha_labels.map(|x| format!("{x:.3}")).unwrap_or("–".into())) } }
                    }
                    tr { th scope="row" { "Rare classes" } td { (report.balance.rare.join(", ")) } }
                    tr { th scope="row" { "To anonymise" } td.num { (report.privacy.to_anonymise) } }
                    tr { th scope="row" { "Not redistributable" } td.num { (report.privacy.not_redistributable) } }
                } } }
                @for (_, svg) in report.charts() { (chart(&svg)) }
            };
            html_response(
                StatusCode::OK,
                layout("X-ray quality report", Some(caller), None, body),
            )
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

/// The review queue: views with disputed objects, open ones first.
pub(crate) async fn disputes(State(state): State<AppState>, auth: Authenticated) -> Response {
    let caller = caller_of(&auth);
    match on_desk(&state, |d| d.disputes()).await {
        Ok(list) => {
            let open: usize = list.iter().map(|d| d.open).sum();
            let body = html! {
                h1 { "Disputed objects" }
                p #disputes-summary role="status" {
                    (list.len()) " view(s) with disputed objects; " (open) " object(s) open. "
                    "An object is disputed when the annotators' labels differ or an annotator \
                     assigned to the scan did not draw it; your decision is recorded as the \
                     reviewer's own source and the consensus follows it."
                }
                div.scroll { table #dispute-queue {
                    thead { tr { th scope="col" { "Scan" } th scope="col" { "View" }
                                 th scope="col" { "Annotators" } th scope="col" { "Disputed" }
                                 th scope="col" { "Open" } th scope="col" { "Why" }
                                 th scope="col" { "Reviewed by" } } }
                    tbody {
                        @for d in &list {
                            tr data-scan=(d.scan_id) data-open=(d.open) {
                                td { a href={ "/nii/disputes/" (encode(&d.scan_id)) "?view=" (d.view) } { (d.scan_id) } }
                                td.num { (d.view) } td.num { (d.annotators) }
                                td.num { (d.disputed) } td.num { (d.open) }
                                td { @for r in &d.reasons { (r) br; } }
                                td { (d.reviewer.clone().unwrap_or_default())
                                     @if d.stale { " (annotated since)" } }
                            }
                        }
                    }
                } }
            };
            html_response(
                StatusCode::OK,
                layout("Disputed objects", Some(caller), None, body),
            )
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

/// A view's disputed objects, with the form that decides them.
pub(crate) async fn dispute(
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
    let view = view_of(query.as_deref());
    let lookup = id.clone();
    let pages = on_desk(&state, move |d| {
        Ok((d.dispute(&lookup, view)?, d.viewer(&lookup, true)?))
    })
    .await;
    match pages {
        Ok((review, scan)) => dispute_page(StatusCode::OK, caller, &review, &scan, None, None),
        Err(error) => error_page(Some(caller), &error),
    }
}

/// What the reviewer's form rows start from: each disputed object (with its decision so far),
/// then the reviewer's additions.
fn decision_rows(review: &DisputeReview) -> Vec<(Option<usize>, AnnotatedObject, bool)> {
    let mut rows = Vec::new();
    for (n, (m, d)) in review.resolved.merged.iter().enumerate() {
        if !m.disputed() {
            continue;
        }
        let (object, keep) = match d {
            Decision::Kept { object, .. } => (object.clone(), true),
            Decision::Rejected { .. } => (
                AnnotatedObject {
                    label: m.label.clone(),
                    bbox: m.bbox,
                    score: 1.0,
                },
                false,
            ),
            _ => (
                AnnotatedObject {
                    label: m.label.clone(),
                    bbox: m.bbox,
                    score: 1.0,
                },
                m.accepted,
            ),
        };
        rows.push((Some(n), object, keep));
    }
    for o in &review.resolved.added {
        rows.push((None, o.clone(), true));
    }
    rows
}

/// The decision form's page; after a refusal (`sent`), its rows hold what was sent.
fn dispute_page(
    status: StatusCode,
    caller: &Caller,
    review: &DisputeReview,
    scan: &ScanViewer,
    problem: Option<&str>,
    sent: Option<&Form>,
) -> Response {
    let csrf = caller.csrf_token.clone().unwrap_or_default();
    let rows = decision_rows(review);
    let total = rows.len() + 1;
    // what a row's field shows: what was sent, after a refusal; else `default`
    let value = |name: String, default: String| -> String {
        match sent.and_then(|f| f.get(&name)) {
            Some(v) => v.to_string(),
            None => default,
        }
    };
    let v = &scan.views[review.view.min(scan.views.len() - 1)];
    let r = &review.resolved;
    let body = html! {
        h1 { "Review scan " (review.scan_id) ", view " (review.view) }
        p { a href="/nii/disputes" { "Disputed objects" } " · "
            a href={ (scan_href(&review.scan_id)) "?view=" (review.view) } { "Viewer" } }
        @if let Some(problem) = problem {
            div.banner.bad role="alert" { p { "Nothing was saved: " (problem) } }
        }
        p #review-state role="status" {
            (r.disputed()) " disputed object(s), " (r.open()) " open; annotators: "
            (r.annotators.join(", ")) "."
            @if let Some(who) = &r.reviewer {
                " Decided by " (who) @if r.stale { " before a later annotation: objects it did not see are open again" } "."
            }
        }
        (viewer(&review.scan_id, review.view, review.width, review.height, &v.energies, &v.layers, false))
        section aria-labelledby="members-h" {
            h2 #members-h { "What each annotator drew" }
            div.scroll { table #disputed-objects {
                thead { tr { th scope="col" { "#" } th scope="col" { "Votes" }
                             th scope="col" { "Boxes" } th scope="col" { "Not drawn by" }
                             th scope="col" { "Decision so far" } } }
                tbody {
                    @for (n, (m, d)) in r.merged.iter().enumerate().filter(|(_, (m, _))| m.disputed()) {
                        tr data-merged=(n) {
                            td.num { (n + 1) }
                            td { @for (label, votes) in &m.votes { (label) " ×" (votes) " " } }
                            td { @for x in &m.members { (x.annotator) ": " (x.label) " [" (number(x.bbox.x0)) ", "
                                 (number(x.bbox.y0)) ", " (number(x.bbox.x1)) ", " (number(x.bbox.y1)) "]" br; } }
                            td { (m.absent.join(", ")) }
                            td { @match d {
                                Decision::Kept { reviewer, object } => { "kept as " (object.label) " by " (reviewer) },
                                Decision::Rejected { reviewer } => { "rejected by " (reviewer) },
                                _ => strong { "open" },
                            } }
                        }
                    }
                }
            } }
        }
        form.card #decide method="post" action={ "/nii/disputes/" (encode(&review.scan_id)) } {
            input type="hidden" name="csrf_token" value=(csrf);
            input type="hidden" name="view" value=(review.view);
            input type="hidden" name="lines" value=(review.lines);
            input type="hidden" name="opened_at" value=(sent.and_then(|f| f.get("opened_at")).map_or(now_ms().to_string(), str::to_string));
            input type="hidden" name="rows" value=(total);
            table #decisions {
                thead { tr { th scope="col" { "#" } th scope="col" { "Keep" } th scope="col" { "Class" }
                             th scope="col" { "x0" } th scope="col" { "y0" } th scope="col" { "x1" } th scope="col" { "y1" } } }
                tbody {
                    @for i in 0..total {
                        @let (merged, object, keep) = match rows.get(i) {
                            Some((m, o, k)) => (*m, Some(o), *k),
                            None => (None, None, false),
                        };
                        @let keep = match sent { Some(f) => f.get(&format!("keep{i}")).is_some(), None => keep };
                        @let label = value(format!("label{i}"), object.map(|o| o.label.clone()).unwrap_or_default());
                        tr data-row=(i) data-decides=[merged] {
                            td { @match merged { Some(n) => { "object " (n + 1) }, None => @if object.is_some() { "added" } @else { "new" } } }
                            td { input type="checkbox" name={ "keep" (i) } value="1" checked[keep]
                                 aria-label={ "Keep row " (i + 1) }; }
                            td { select name={ "label" (i) } aria-label={ "Class of row " (i + 1) } {
                                option value="" selected[label.is_empty()] { "—" }
                                @for c in &review.classes {
                                    option value=(c) selected[&label == c] { (c) }
                                }
                            } }
                            @for (name, corner) in [("x0_", object.map(|o| o.bbox.x0)), ("y0_", object.map(|o| o.bbox.y0)),
                                                   ("x1_", object.map(|o| o.bbox.x1)), ("y1_", object.map(|o| o.bbox.y1))] {
                                td { input type="number" step="0.1" min="0" name={ (name) (i) }
                                     aria-label={ (name.trim_end_matches('_')) " of row " (i + 1) }
                                     value=(value(format!("{name}{i}"), corner.map(number).unwrap_or_default())); }
                            }
                        }
                    }
                }
            }
            p.muted { "Tick Keep and choose the class for each disputed object that is a real object \
                       (the box starts as the annotators' fused box); leave it unticked to reject it. \
                       The last row adds an object the annotators missed." }
            button.primary type="submit" #save-decision { "Record the decision" }
        }
    };
    html_response(
        status,
        layout("Review disputed objects", Some(caller), None, body),
    )
}

/// The kept rows of a decision form, or the first problem (naming the row and field).
fn kept_of(form: &Form) -> Result<Vec<AnnotatedObject>, String> {
    let count: usize = form
        .get("rows")
        .ok_or_else(|| "rows: missing (send the page's form)".to_string())?
        .parse()
        .map_err(|_| "rows: not a number".to_string())?;
    if count > MAX_ROWS {
        return Err(format!("rows: at most {MAX_ROWS}"));
    }
    let mut kept = Vec::new();
    for i in 0..count {
        let get = |name: &str| form.get(&format!("{name}{i}")).unwrap_or("").trim();
        if get("keep").is_empty() {
            continue;
        }
        let label = get("label");
        if label.is_empty() {
            return Err(format!("row {}: class: choose one to keep it", i + 1));
        }
        let mut v = [0f64; 4];
        for (k, name) in ["x0_", "y0_", "x1_", "y1_"].iter().enumerate() {
            v[k] = get(name)
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    format!(
                        "row {}: {}: not a number",
                        i + 1,
                        name.trim_end_matches('_')
                    )
                })?;
        }
        let bbox = BoxPx::new(v[0], v[1], v[2], v[3]).map_err(|e| format!("row {}: {e}", i + 1))?;
        if bbox.x1 <= bbox.x0 || bbox.y1 <= bbox.y0 {
            return Err(format!(
                "row {}: the box is empty (x1 must exceed x0 and y1 exceed y0)",
                i + 1
            ));
        }
        kept.push(AnnotatedObject {
            label: label.to_string(),
            bbox,
            score: 1.0,
        });
    }
    Ok(kept)
}

/// Records a reviewer's decision, then shows the view's consensus.
pub(crate) async fn decide(
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
    let view: usize = form.get("view").and_then(|v| v.parse().ok()).unwrap_or(0);
    let opened: i64 = form
        .get("opened_at")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let seconds = (opened > 0).then(|| (now_ms() - opened) as f64 / 1000.0);
    let seen_lines = form.get("lines").and_then(|v| v.parse().ok());
    let user = caller.user.clone();
    let scan_id = id.clone();
    let saved = match kept_of(&form) {
        Ok(kept) => {
            on_desk(&state, move |d| {
                d.resolve(
                    &scan_id,
                    &user,
                    ReviewDecision {
                        view,
                        kept,
                        seconds,
                        seen_lines,
                    },
                )
            })
            .await
        }
        Err(problem) => Err(ApiError::unprocessable(problem)),
    };
    match saved {
        Ok(_) => see_other(&format!("{}?view={view}&decided=1", scan_href(&id))),
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let lookup = id.clone();
            match on_desk(&state, move |d| {
                Ok((d.dispute(&lookup, view)?, d.viewer(&lookup, true)?))
            })
            .await
            {
                // a changed view is drawn afresh; any other refusal keeps what was sent
                Ok((review, scan)) => {
                    let changed = error.message.contains("changed since the page was drawn");
                    let sent = (!changed).then_some(&form);
                    dispute_page(
                        error.status,
                        caller,
                        &review,
                        &scan,
                        Some(&error.message),
                        sent,
                    )
                }
                Err(other) => error_page(Some(caller), &other),
            }
        }
        Err(error) => error_page(Some(caller), &error),
    }
}
