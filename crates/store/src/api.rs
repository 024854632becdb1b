//! The store's operations, one trait per room, each implemented once by [`Store`] over the
//! executor (`crate::sql`), whatever the database. [`Backend`] is every room together: what
//! jobs, the server's pool and the CLI hold (`Box<dyn Backend>`). A new room (the NII
//! catalogue, derived values of HS classification) adds its trait here and its module beside
//! the others; its SQL is written once.

use std::convert::Infallible;
use std::fmt::Display;

use borderlens_domain::{Declaration, DeclarationItem, ItemKey, Lane};
use chrono::NaiveDate;

use crate::{
    AuditEntry, CataloguedScan, HsSignals, ImportOutcome, ItemFilter, LabelCounts, LoginGate,
    ModelInfo, NewControlResult, NewDecision, NewHsReading, PartyLink, Recorded, RecordedConflict,
    SharingFilter, Store, StoreError, StoredControlResult, StoredDecision, StoredHsReading,
    StoredModel, StoredPartyLink, StoredScan, StoredScore, StoredSession, StoredToken, StoredUser,
};

/// Declaration items as declared: import (insert, idempotent re-import, late labels,
/// conflicts) and queries (`items.rs`).
pub trait Items {
    /// Imports `(item, line)` pairs read from `source` (a file name, recorded with each item),
    /// all in one transaction: either every item is handled, or (on error) nothing is kept.
    ///
    /// Per key: new -> inserted; same content -> unchanged; stored without a label and arriving
    /// with one -> label added (`labelled`); any other difference in declared content or label
    /// -> conflict, the stored item kept untouched. Items are streamed. When the stream yields
    /// an error (e.g. the user pressed Ctrl-C) the import stops with
    /// [`StoreError::Aborted`] and nothing of it is kept. Writes one `import` audit entry.
    /// `import` and `try_import` on `dyn Backend` take any iterator.
    fn import_stream(
        &mut self,
        source: &str,
        items: &mut dyn Iterator<Item = Result<(DeclarationItem, u64), String>>,
    ) -> Result<ImportOutcome, StoreError>;
    /// Items matching `filter`, ordered by date, then declaration id, then item number.
    fn items(&self, filter: &ItemFilter) -> Result<Vec<DeclarationItem>, StoreError>;
    /// The item with `key`, if stored.
    fn item(&self, key: &ItemKey) -> Result<Option<DeclarationItem>, StoreError>;
    /// Every stored item of declaration `id` (one query), `None` when it has none.
    fn declaration(&self, id: &str) -> Result<Option<Declaration>, StoreError>;
    /// Up to `limit` items of other declarations (`exclude` left out) that share the importer
    /// or the declarant, or whose importer (declarant) a linkage run linked to this importer
    /// (declarant) ([`PartyLinks`]), newest first, each with what links it: `importer`,
    /// `linked importer`, `declarant`, `linked declarant`, joined by `, `.
    fn related_items(
        &self,
        importer_id: &str,
        declarant_id: &str,
        exclude: &str,
        limit: usize,
    ) -> Result<Vec<(DeclarationItem, String)>, StoreError>;
    /// The items of `filter`, in [`Items::items`] order: what one item's history features read
    /// (its importer's, declarant's, seller's and HS code's past), without every earlier item.
    fn items_sharing(&self, filter: &SharingFilter) -> Result<Vec<DeclarationItem>, StoreError>;
    /// How many items dated before `before` are labelled, and how many of them as fraud.
    fn label_counts(&self, before: NaiveDate) -> Result<LabelCounts, StoreError>;
    /// The date of the newest stored item, if any.
    fn last_item_date(&self) -> Result<Option<NaiveDate>, StoreError>;
    /// Number of stored items.
    fn count_items(&self) -> Result<u64, StoreError>;
    /// The conflicts recorded for `key` by past imports, oldest first.
    fn conflicts_for(&self, key: &ItemKey) -> Result<Vec<RecordedConflict>, StoreError>;
}

/// The model registry (numbered versions of opaque bytes with JSON metadata) and the scores
/// of each version (`registry.rs`).
pub trait Registry {
    /// Saves a new version of model `name` (1 for the first, then 2, 3...) and returns it.
    /// `metadata_json` must be valid JSON. Writes a `save_model` audit entry.
    fn save_model(
        &mut self,
        name: &str,
        metadata_json: &str,
        bytes: &[u8],
    ) -> Result<u32, StoreError>;
    /// Version `version` of model `name`, or its latest version when `version` is `None`;
    /// `None` when there is no such model or version.
    fn load_model(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredModel>, StoreError>;
    /// Every stored model version (without bytes), by name then version.
    fn list_models(&self) -> Result<Vec<ModelInfo>, StoreError>;
    /// Saves `scores` of stored items by model `model` version `version`, in one transaction,
    /// replacing earlier scores of that model version for the same items. Fails, keeping
    /// nothing, when the model version or an item is not stored or a score is not finite.
    /// Writes a `save_scores` audit entry. Returns the number of scores saved.
    fn save_scores(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64)],
    ) -> Result<usize, StoreError> {
        let with_reasons: Vec<(ItemKey, f64, Vec<String>)> = scores
            .iter()
            .map(|(key, score)| (key.clone(), *score, Vec::new()))
            .collect();
        self.save_scores_with_reasons(model, version, &with_reasons)
    }
    /// [`Registry::save_scores`], each score with its top reasons in words (kept as a JSON
    /// array; none is kept as NULL).
    fn save_scores_with_reasons(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64, Vec<String>)],
    ) -> Result<usize, StoreError>;
    /// Every stored score of the item `key`, by model name then version.
    fn scores_for(&self, key: &ItemKey) -> Result<Vec<StoredScore>, StoreError>;
}

/// Selection policies (versioned), selection decisions with their inclusion probability π,
/// and officer overrides, all append-only (`decisions.rs`).
pub trait Decisions {
    /// Saves a new version of policy `name` (valid JSON) and returns it; the same body as the
    /// latest version returns that version and writes nothing.
    fn save_policy(&mut self, name: &str, body_json: &str) -> Result<u32, StoreError>;
    /// Version `version` of policy `name` (the latest when `None`): its version and body.
    fn load_policy(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, String)>, StoreError>;
    /// Whether `declaration_id` has a decision.
    fn is_decided(&self, declaration_id: &str) -> Result<bool, StoreError>;
    /// Whether `batch` has been decided.
    fn batch_decided(&self, batch: &str) -> Result<bool, StoreError>;
    /// Records decisions in one transaction, one `select` audit entry per batch. Refuses the
    /// whole call when a batch or a declaration is already decided, a declaration or the item
    /// decided on is not stored, or a π is not a probability.
    fn record_decisions(&mut self, decisions: &[NewDecision]) -> Result<usize, StoreError>;
    /// An officer's override of the latest decision on `declaration_id`, with its mandatory
    /// reason: a new entry beside the original (its item, policy, model, score and π copied),
    /// audited.
    fn override_decision(
        &mut self,
        declaration_id: &str,
        lane: Lane,
        reason: &str,
    ) -> Result<StoredDecision, StoreError>;
    /// The decisions and overrides on `declaration_id`, oldest first.
    fn decisions_for(&self, declaration_id: &str) -> Result<Vec<StoredDecision>, StoreError>;
    /// Every decision and override whose batch starts with `batch_prefix` (ASCII
    /// case-insensitive), oldest first.
    fn decisions(&self, batch_prefix: Option<&str>) -> Result<Vec<StoredDecision>, StoreError>;
}

/// Control results: append-only, idempotent by submission id, feeding the item labels
/// (`controls.rs`).
pub trait Controls {
    /// Stores a control result in one transaction and feeds its label to the declaration's
    /// items (a label only grows: fraud found later upgrades a clean label, never the reverse).
    ///
    /// Idempotent: the same `submission_id` with the same payload returns
    /// [`Recorded::Duplicate`]; with a different payload it is refused
    /// ([`StoreError::SubmissionConflict`]). A result for a declaration that is not in the
    /// store is refused ([`StoreError::UnknownDeclaration`]).
    fn record_control_result(&mut self, result: &NewControlResult) -> Result<Recorded, StoreError>;
    /// The control results of `declaration_id`, oldest first.
    fn control_results_for(
        &self,
        declaration_id: &str,
    ) -> Result<Vec<StoredControlResult>, StoreError>;
    /// Every control result, oldest first.
    fn control_results(&self) -> Result<Vec<StoredControlResult>, StoreError>;
    /// Stores another administration's anonymised results (`foreign_results.rs`) in one
    /// transaction, with their provenance, apart from this store's own results: they label no
    /// item. Idempotent per sender and submission pseudonym: the same values again count as
    /// duplicates; other values under a stored pseudonym refuse the whole document
    /// ([`StoreError::Invalid`]). Audited (`foreign_results`).
    fn record_foreign_results(
        &mut self,
        document: &crate::ForeignDocument,
    ) -> Result<crate::ForeignImport, StoreError>;
    /// Every foreign result, oldest first.
    fn foreign_results(&self) -> Result<Vec<crate::StoredForeignResult>, StoreError>;
}

/// Users, API tokens, login sessions and the login rate limit (`accounts.rs`).
pub trait Accounts {
    /// Adds a user with a role of [`ROLES`](crate::ROLES) and the argon2id PHC string of the
    /// password, and audits it (`user_add`; the hash is not logged). A name that exists is
    /// refused: a user is never silently replaced.
    fn add_user(&mut self, name: &str, role: &str, password_hash: &str) -> Result<(), StoreError>;
    /// The user called `name`, if any.
    fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError>;
    /// Replaces the password hash of user `name` and ends the user's sessions, in one
    /// transaction, audited (`password_set`). False when there is no such user.
    fn set_password_hash(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// Every user, by name.
    fn users(&self) -> Result<Vec<StoredUser>, StoreError>;
    /// Records an API token of `user` by the SHA-256 of the token, and audits it
    /// (`token_create`, with the first 8 digits of the digest).
    fn add_api_token(&mut self, user: &str, token_sha256: &str) -> Result<(), StoreError>;
    /// The user an unrevoked API token (given by its SHA-256) belongs to.
    fn user_for_token(&self, token_sha256: &str) -> Result<Option<StoredUser>, StoreError>;
    /// The API tokens of `user` (of every user when `None`), newest first, revoked ones
    /// included.
    fn api_tokens(&self, user: Option<&str>) -> Result<Vec<StoredToken>, StoreError>;
    /// Revokes an API token (by its SHA-256) for good, and audits it (`token_revoke`). Returns
    /// whether an unrevoked token was found.
    fn revoke_api_token(&mut self, token_sha256: &str) -> Result<bool, StoreError>;
    /// The login rate limit, shared by every process on this store. Before a password is
    /// checked: when any of `keys` (e.g. `user:NAME`, `ip:ADDRESS`) has `max_failures` within
    /// `window_ms` before `now_ms` (Unix milliseconds, from [`Accounts::clock_ms`]), says how
    /// long to wait, writing nothing; otherwise counts the attempt as a failure of each key
    /// now, in a transaction that checks again first under the keys' locks (so that concurrent
    /// attempts, from any server, cannot pass the limit together), and sweeps failures out of
    /// the window. Not under the store's writer lock on PostgreSQL: logins neither wait for
    /// imports nor make other writers wait. Failed logins are not audited.
    fn begin_login(
        &mut self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
        max_failures: u32,
    ) -> Result<LoginGate, StoreError>;
    /// Takes back the failures counted by [`Accounts::begin_login`] (the password was right).
    fn forget_login_failures(&mut self, ids: &[i64]) -> Result<(), StoreError>;
    /// The store's clock, in Unix milliseconds: the time [`Accounts::begin_login`] counts in.
    /// On SQLite, this machine's clock (every server on the file runs here); on PostgreSQL, the
    /// database server's, so that servers on several machines count in one clock.
    fn clock_ms(&self) -> Result<i64, StoreError>;
    /// Opens a login session of `user` lasting `ttl_seconds`, kept by the SHA-256 of its id
    /// with its CSRF token, and audits it (`login`, by the user). Expired sessions are deleted
    /// on the way. Returns when the session expires (UTC, ISO 8601).
    fn create_session(
        &mut self,
        session_sha256: &str,
        user: &str,
        csrf_token: &str,
        ttl_seconds: u32,
    ) -> Result<String, StoreError>;
    /// The session whose id has this SHA-256, unless it has expired.
    fn session(&self, session_sha256: &str) -> Result<Option<StoredSession>, StoreError>;
    /// Ends the session whose id has this SHA-256 and audits it (`logout`, by the user).
    /// Returns whether there was such a session.
    fn delete_session(&mut self, session_sha256: &str) -> Result<bool, StoreError>;
}

/// The append-only audit log: who did what, when, to what (`audit.rs`).
pub trait Audit {
    /// Appends an entry and returns its id. `detail_json` must be valid JSON. Entries can never
    /// be changed or deleted (triggers refuse it).
    fn append_audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail_json: &str,
    ) -> Result<i64, StoreError>;
    /// The latest `limit` entries, newest first.
    fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// The latest `limit` entries whose action starts with `prefix`, newest first (e.g. every
    /// `federation_` entry, however many others were written since).
    fn audit_entries_of(&self, prefix: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}

/// HS readings of goods descriptions: derived values per item and HS model, kept beside the
/// declared code and never written over it (`hs_readings.rs`).
pub trait HsReadings {
    /// Saves readings in one transaction; a reading of an item by a model that already has one
    /// is left as it is (readings are written once). Refuses the whole call, keeping nothing,
    /// when an item is not stored, a reading's JSON is not valid, its model is empty or a
    /// probability is outside 0 to 1. Writes one `save_hs_readings` audit entry when anything
    /// was saved. Returns the number of readings saved.
    fn save_hs_readings(&mut self, readings: &[NewHsReading]) -> Result<usize, StoreError>;
    /// The reading of item `key` by model `model` (its id), if there is one.
    fn hs_reading(&self, key: &ItemKey, model: &str)
        -> Result<Option<StoredHsReading>, StoreError>;
    /// The signals of every reading by model `model`, by declaration id then item number.
    fn hs_signals(&self, model: &str) -> Result<Vec<HsSignals>, StoreError>;
    /// Up to `limit` items with a sender's or a cleaned description and no reading by model
    /// `model`, by declaration id then item number: what an annotation still has to read.
    fn items_without_hs_reading(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DeclarationItem>, StoreError>;
    /// How many readings each model made, by model id.
    fn hs_read_models(&self) -> Result<Vec<(String, u64)>, StoreError>;
}

/// Party links: parties (importer, declarant ids) that a record-linkage run found to be one
/// firm under several ids (`party_links.rs`). Derived values, replaced whole by each run.
pub trait PartyLinks {
    /// Replaces every stored party link by `links`, found by linkage run `run`, in one
    /// transaction, and writes a `replace_party_links` audit entry. Refuses the whole call,
    /// keeping the previous links, when an id or the run is empty, a party appears twice, a
    /// party is linked to itself or to a party outside its group, or a probability is outside
    /// 0 to 1. Returns the number of links saved.
    fn replace_party_links(&mut self, run: &str, links: &[PartyLink]) -> Result<usize, StoreError>;
    /// Every party of `party_id`'s group (itself included), by party id; empty when it is
    /// linked to no other party.
    fn party_group(&self, party_id: &str) -> Result<Vec<StoredPartyLink>, StoreError>;
    /// Every stored party link, by group then party id.
    fn party_links(&self) -> Result<Vec<StoredPartyLink>, StoreError>;
    /// How many parties are linked, in how many groups.
    fn party_link_counts(&self) -> Result<(u64, u64), StoreError>;
}

/// The X-ray catalogue (`nii_catalogue.rs`): the scans of reference libraries, with the ids
/// that link them to declarations. A library's rows are replaced whole from its folder.
pub trait NiiCatalogue {
    /// Replaces the rows of library `library` by `scans` in one transaction, with a
    /// `catalogue_nii_library` audit entry. Refuses the whole call, keeping the previous rows,
    /// when the library or a scan id is empty, a scan id appears twice, a required field is
    /// empty or a scan has no view. Returns the number of scans catalogued.
    fn replace_nii_catalogue(
        &mut self,
        library: &str,
        scans: &[CataloguedScan],
    ) -> Result<usize, StoreError>;
    /// The catalogued scans of any of `container_ids` or `package_ids` (canonical forms), in
    /// every library, newest first.
    fn nii_scans_of(
        &self,
        container_ids: &[String],
        package_ids: &[String],
    ) -> Result<Vec<StoredScan>, StoreError>;
    /// How many scans each catalogued library holds, by library.
    fn nii_catalogue_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// The catalogued scans of library `library`, by scan id (a read: no lock taken).
    fn nii_catalogue_of(&self, library: &str) -> Result<Vec<CataloguedScan>, StoreError>;
    /// Up to `limit` items whose declared container number is one of `container_ids`, or
    /// whose postal item id is one of `package_ids` (canonical forms; the declared value is
    /// compared in upper case without spaces and hyphens), newest first: the declarations of
    /// the transport units of a scan.
    fn items_of_transport(
        &self,
        container_ids: &[String],
        package_ids: &[String],
        limit: usize,
    ) -> Result<Vec<DeclarationItem>, StoreError>;
    /// The declaration ids of the items [`NiiCatalogue::items_of_transport`] finds (every one,
    /// ids only), sorted: what a catalogue run counts.
    fn declarations_of_transport(
        &self,
        container_ids: &[String],
        package_ids: &[String],
    ) -> Result<Vec<String>, StoreError>;
}

/// Every room of the store, on whichever database: what jobs, the server and the CLI hold.
pub trait Backend:
    Items
    + Registry
    + Decisions
    + Controls
    + Accounts
    + Audit
    + HsReadings
    + PartyLinks
    + NiiCatalogue
    + Send
{
    /// `sqlite` or `postgresql`.
    fn kind(&self) -> &'static str;
    /// Where the data lives: the SQLite file, or the PostgreSQL URL without its password.
    fn location(&self) -> String;
    /// Who the audit entries the store writes itself are attributed to.
    fn set_actor(&mut self, actor: &str);
    /// See [`Backend::set_actor`].
    fn actor(&self) -> &str;
    /// The schema version of the store.
    fn schema_version(&self) -> Result<u32, StoreError>;
}

impl Backend for Store {
    fn kind(&self) -> &'static str {
        Store::kind(self)
    }
    fn location(&self) -> String {
        Store::location(self)
    }
    fn set_actor(&mut self, actor: &str) {
        Store::set_actor(self, actor)
    }
    fn actor(&self) -> &str {
        Store::actor(self)
    }
    fn schema_version(&self) -> Result<u32, StoreError> {
        Store::schema_version(self)
    }
}

impl dyn Backend + '_ {
    /// [`Items::import_stream`] of any iterator of items.
    pub fn import<I>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = (DeclarationItem, u64)>,
    {
        self.try_import(source, items.into_iter().map(Ok::<_, Infallible>))
    }

    /// [`Items::import_stream`] of any iterator of items or errors.
    pub fn try_import<I, E>(&mut self, source: &str, items: I) -> Result<ImportOutcome, StoreError>
    where
        I: IntoIterator<Item = Result<(DeclarationItem, u64), E>>,
        E: Display,
    {
        let mut stream = items
            .into_iter()
            .map(|entry| entry.map_err(|e| e.to_string()));
        self.import_stream(source, &mut stream)
    }
}
