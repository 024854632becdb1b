//! The one role table: which role may see or do what. The API's routes (`routes.rs`), the pages
//! (`pages/`) and the parts of a page that show data of their own (the dashboard's estimates,
//! bias audit, drift, hit rates and model evaluation) all ask it, so a page never shows what the
//! API refuses the same user, and the reverse.

use borderlens_app::Role;

/// Something a role may see or do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Use a session: log out, ask who one is, the home page.
    Session,
    /// Read decisions: the risk queue, declarations, decision traces, saved scores and
    /// explanations, the dashboard's latest control results, and the HS reading of goods
    /// descriptions (`hs/suggest`, `hs/check`: what a declaration page shows, for any text).
    ReadDecisions,
    /// Record control results and override decisions.
    Record,
    /// Read the monitoring figures: non-compliance estimates, the bias audit, drift, weekly hit
    /// rates and the newest model's evaluation (API routes and dashboard sections alike).
    Monitor,
    /// Import declarations and score them.
    Score,
    /// Decide lanes (`select`).
    Select,
    /// Read the audit log.
    Audit,
    /// Manage API tokens.
    Administer,
    /// Annotate X-ray scans at the desk, see the model versions and retrain the detector.
    Annotate,
    /// Read the X-ray detector's detections and heat maps on a scan (officers and analysts on
    /// a declaration's scans, annotators at the desk).
    ReadScans,
    /// Decide the X-ray library's disputed objects (the reviewer's own source).
    Review,
}

const EVERYONE: &[Role] = &Role::ALL;
const READERS: &[Role] = &[Role::Officer, Role::Analyst, Role::Manager, Role::Admin];
const RECORDERS: &[Role] = &[Role::Officer, Role::Manager, Role::Admin];
const ANALYSTS: &[Role] = &[Role::Analyst, Role::Manager, Role::Admin];
const MANAGERS: &[Role] = &[Role::Manager, Role::Admin];
const ADMINS: &[Role] = &[Role::Admin];
const ANNOTATORS: &[Role] = &[Role::Annotator, Role::Manager, Role::Admin];

impl Permission {
    /// Every permission, in the order of the table in `docs/server.md`.
    pub const ALL: [Permission; 11] = [
        Permission::Session,
        Permission::ReadDecisions,
        Permission::Record,
        Permission::Monitor,
        Permission::Score,
        Permission::Select,
        Permission::Audit,
        Permission::Administer,
        Permission::Annotate,
        Permission::ReadScans,
        Permission::Review,
    ];

    /// The roles that have this permission: the table itself.
    pub const fn roles(self) -> &'static [Role] {
        match self {
            Permission::Session | Permission::ReadScans => EVERYONE,
            Permission::ReadDecisions => READERS,
            Permission::Record => RECORDERS,
            Permission::Monitor | Permission::Score => ANALYSTS,
            Permission::Select | Permission::Audit | Permission::Review => MANAGERS,
            Permission::Administer => ADMINS,
            Permission::Annotate => ANNOTATORS,
        }
    }

    /// Whether `role` has this permission.
    pub fn allows(self, role: Role) -> bool {
        self.roles().contains(&role)
    }
}
